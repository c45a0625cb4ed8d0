package ntpclient

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/beevik/ntp"
)

// DefaultPort is the NTP port used when an address names none.
const DefaultPort = 123

// modeServer is the NTP association mode of a server reply (RFC 5905 7.3).
const modeServer = 4

// Leap is the leap indicator of a reply (RFC 5905 7.3).
type Leap uint8

// Leap indicator values.
const (
	LeapNone           Leap = 0 // no warning
	LeapInsert         Leap = 1 // last minute of the day has 61 seconds
	LeapDelete         Leap = 2 // last minute of the day has 59 seconds
	LeapUnsynchronized Leap = 3 // clock unsynchronised
)

// String returns "none", "insert", "delete" or "unsync".
func (l Leap) String() string {
	switch l {
	case LeapNone:
		return "none"
	case LeapInsert:
		return "insert"
	case LeapDelete:
		return "delete"
	}
	return "unsync"
}

// Options configures one exchange. The zero value is ready to use.
type Options struct {
	// Timeout bounds the wait for the reply. Default 2 s.
	Timeout time.Duration
	// Version is the NTP version of the request, 3 or 4. Default 4.
	Version int
	// Port is used when the address names no port. Default 123.
	Port int
	// Dialer opens the UDP socket; nil uses net.Dial. Tests use it to
	// query from inside a network namespace.
	Dialer func(localAddress, remoteAddress string) (net.Conn, error)
}

// Response is one server reply. Durations are signed where noted.
type Response struct {
	// Address is the server address that answered.
	Address netip.AddrPort
	// Version and Mode are the reply's protocol version and mode.
	Version, Mode int
	// Leap is the leap indicator.
	Leap Leap
	// Stratum is the server's stratum (0 = Kiss-o'-Death, 16 = unsynchronised).
	Stratum int
	// RefID is the reference ID: the kiss code or reference-clock name for
	// stratum 0 and 1, otherwise dotted quad ("127.127.1.1").
	RefID string
	// Offset is the server's clock minus the local clock (> 0: local behind).
	Offset time.Duration
	// Delay is the round-trip delay, (T4 - T1) - (T3 - T2); it can be
	// negative only if the server's timestamps are bogus.
	Delay time.Duration
	// RootDelay and RootDispersion are the server's figures to its
	// primary reference (RFC 5905 7.3).
	RootDelay, RootDispersion time.Duration
	// RootDistance is RootDelay/2 + Delay/2 + RootDispersion: the bound on
	// this reply's error (RFC 5905 A.5.5.2, without jitter terms).
	RootDistance time.Duration
	// Precision and Poll are the server's precision and poll interval.
	Precision, Poll time.Duration
	// ReferenceTime is when the server's clock was last set or corrected.
	ReferenceTime time.Time
	// Time is the server's transmit timestamp (T3).
	Time time.Time
	// TransmitZero is set when the server's transmit timestamp was zero.
	TransmitZero bool
}

// Query performs one exchange with the server at address ("host",
// "host:port", "[v6addr]:port", or a bare IPv6 address).
//
// A reply that arrives but fails Validate is returned together with the
// validation error, so it can be shown; use it for nothing else. A nil
// Response means no usable reply arrived (network error, timeout, or a
// reply too broken to decode: origin mismatch, zero transmit timestamp,
// wrong mode).
func Query(ctx context.Context, address string, opt Options) (*Response, error) {
	host, port, err := SplitHostPort(address, opt.Port)
	if err != nil {
		return nil, err
	}
	// The exchange takes no context: it is bounded by its timeout, and a
	// cancelled context stops further exchanges.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("query %s: %w", address, err)
	}
	timeout := opt.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	version := opt.Version
	if version == 0 {
		version = 4
	}
	if version < 3 || version > 4 {
		return nil, fmt.Errorf("query %s: NTP version %d not supported (3 or 4)", address, version)
	}
	raw := &rawReply{}
	r, err := ntp.QueryWithOptions(net.JoinHostPort(host, strconv.Itoa(port)), ntp.QueryOptions{
		Timeout:    timeout,
		Version:    version,
		Dialer:     opt.Dialer,
		Extensions: []ntp.Extension{raw},
	})
	if err != nil {
		// The library drops some bad replies itself; name them our way.
		for lib, ours := range map[error]error{
			ntp.ErrServerResponseMismatch: ErrOriginMismatch,
			ntp.ErrInvalidTransmitTime:    ErrZeroTransmit,
			ntp.ErrInvalidMode:            ErrBadMode,
			os.ErrDeadlineExceeded:        ErrTimeout,
			syscall.ECONNREFUSED:          ErrRefused,
		} {
			if errors.Is(err, lib) {
				err = ours
				break
			}
		}
		return nil, fmt.Errorf("query %s: %w", address, err)
	}
	resp := fromBeevik(r, raw)
	resp.Address, _ = netip.ParseAddrPort(net.JoinHostPort(host, strconv.Itoa(port)))
	if err := Validate(resp); err != nil {
		return resp, fmt.Errorf("query %s: %w", address, err)
	}
	return resp, nil
}

// rawReply keeps the fields of the reply's header that the library does not
// expose (mode, the raw transmit timestamp).
type rawReply struct {
	header [48]byte
	n      int
}

func (x *rawReply) ProcessQuery(*bytes.Buffer) error { return nil }

func (x *rawReply) ProcessResponse(buf []byte) error {
	x.n = copy(x.header[:], buf)
	// A poll or precision exponent of -128 makes the library panic
	// (beevik/ntp v1.6.0 toInterval); no honest server sends it.
	if len(buf) >= 4 && (buf[2] == 0x80 || buf[3] == 0x80) {
		return fmt.Errorf("%w: poll or precision exponent -128", ErrMalformed)
	}
	return nil
}

func fromBeevik(r *ntp.Response, raw *rawReply) *Response {
	t := r.Timestamps
	resp := &Response{
		Version:        r.Version,
		Mode:           int(raw.header[0] & 7),
		Leap:           Leap(r.Leap),
		Stratum:        int(r.Stratum),
		RefID:          refID(r.Stratum, r.ReferenceID),
		Offset:         r.ClockOffset,
		Delay:          t.ClientRecv.Sub(t.ClientXmit) - t.ServerXmit.Sub(t.ServerRecv),
		RootDelay:      r.RootDelay,
		RootDispersion: r.RootDispersion,
		Precision:      r.Precision,
		Poll:           r.Poll,
		ReferenceTime:  r.ReferenceTime,
		Time:           r.Time,
		TransmitZero:   raw.n >= 48 && binary.BigEndian.Uint64(raw.header[40:48]) == 0,
	}
	resp.RootDistance = resp.RootDelay/2 + max(resp.Delay, 0)/2 + resp.RootDispersion
	return resp
}

// refID formats a reference ID: ASCII for stratum 0 and 1 (kiss codes,
// reference clock names), dotted quad otherwise (an IPv4 address, or the
// first four bytes of an IPv6 address's hash).
func refID(stratum uint8, id uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], id)
	if stratum <= 1 {
		s := strings.TrimRight(string(b[:]), "\x00")
		if strings.IndexFunc(s, func(c rune) bool { return c < 0x20 || c > 0x7e }) < 0 {
			return s
		}
	}
	return fmt.Sprintf("%d.%d.%d.%d", b[0], b[1], b[2], b[3])
}

// SplitHostPort splits "host", "host:port", "[v6]:port" or a bare IPv6
// address, using defaultPort (123 when 0) where no port is given.
func SplitHostPort(address string, defaultPort int) (host string, port int, err error) {
	if defaultPort == 0 {
		defaultPort = DefaultPort
	}
	if address == "" {
		return "", 0, errors.New("empty server address")
	}
	bare := address
	if strings.HasPrefix(address, "[") && strings.HasSuffix(address, "]") {
		bare = address[1 : len(address)-1]
	}
	if ip, err := netip.ParseAddr(bare); err == nil {
		return ip.String(), defaultPort, nil
	}
	if !strings.Contains(address, ":") {
		return address, defaultPort, nil
	}
	h, p, err := net.SplitHostPort(address)
	if err != nil {
		return "", 0, fmt.Errorf("server address %q: %w", address, err)
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("server address %q: port must be 1-65535", address)
	}
	if h == "" {
		return "", 0, fmt.Errorf("server address %q: empty host", address)
	}
	return h, port, nil
}
