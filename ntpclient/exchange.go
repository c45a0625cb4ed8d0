package ntpclient

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/ntptool/ntptool/ntpwire"
)

// Request builds a client-mode (3) NTPv4 request whose transmit timestamp
// is cookie (a random number, not the time: the server only echoes it):
// the reply must carry it as its origin timestamp.
func Request(buf []byte, cookie uint64) []byte {
	buf = append(buf[:0], make([]byte, 48)...)
	buf[0] = 4<<3 | 3
	binary.BigEndian.PutUint64(buf[40:], cookie)
	return buf
}

// Sample is one completed exchange as the engine uses it. Offsets follow
// the engine's convention: OffsetS > 0 means the local clock is ahead of
// the server (the opposite sign of Response.Offset).
type Sample struct {
	// OffsetS is local − server at the middle of the exchange, in seconds.
	OffsetS float64
	// DelayS is the round-trip delay in seconds.
	DelayS float64
	// Response carries the server's header fields.
	Response *Response
}

// ParseReply checks a reply to the request with transmit timestamp cookie,
// sent at t1 and received at t4 (local clock readings), and returns the
// sample, or why it is unusable.
func ParseReply(pkt []byte, cookie uint64, t1, t4 time.Time) (Sample, error) {
	if len(pkt) < 48 {
		return Sample{}, fmt.Errorf("%w: %d bytes", ErrMalformed, len(pkt))
	}
	if binary.BigEndian.Uint64(pkt[24:]) != cookie {
		return Sample{}, ErrOriginMismatch
	}
	rx := ntpwire.Timestamp(binary.BigEndian.Uint64(pkt[32:]))
	tx := ntpwire.Timestamp(binary.BigEndian.Uint64(pkt[40:]))
	ref := ntpwire.Timestamp(binary.BigEndian.Uint64(pkt[16:]))
	t1s, t4s := ntpwire.FromTime(t1), ntpwire.FromTime(t4)
	// Era-safe differences (RFC 5905 section 6): all four stamps are
	// within seconds of each other unless the clocks are far apart.
	theta := (rx.Sub(t1s) + tx.Sub(t4s)) / 2 // server − local
	delay := t4s.Sub(t1s) - tx.Sub(rx)
	r := &Response{
		Version:        int(pkt[0] >> 3 & 7),
		Mode:           int(pkt[0] & 7),
		Leap:           Leap(pkt[0] >> 6),
		Stratum:        int(pkt[1]),
		RefID:          refID(pkt[1], binary.BigEndian.Uint32(pkt[12:])),
		Offset:         theta,
		Delay:          delay,
		RootDelay:      ntpwire.ShortToDuration(binary.BigEndian.Uint32(pkt[4:])),
		RootDispersion: ntpwire.ShortToDuration(binary.BigEndian.Uint32(pkt[8:])),
		ReferenceTime:  ref.Time(t4),
		Time:           tx.Time(t4),
		TransmitZero:   tx == 0,
	}
	r.RootDistance = r.RootDelay/2 + max(r.Delay, 0)/2 + r.RootDispersion
	if err := Validate(r); err != nil {
		return Sample{Response: r}, err
	}
	return Sample{OffsetS: -theta.Seconds(), DelayS: delay.Seconds(), Response: r}, nil
}
