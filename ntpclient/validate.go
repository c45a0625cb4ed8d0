package ntpclient

import (
	"errors"
	"fmt"
	"time"
)

// Reasons a reply is not used for synchronisation. Callers use errors.Is.
var (
	// ErrKissOfDeath: the server sent a Kiss-o'-Death (stratum 0); the
	// error is a *KissError carrying the code.
	ErrKissOfDeath = errors.New("kiss-o'-death")
	// ErrUnsynchronized: leap indicator 3, the server's clock is not
	// synchronised.
	ErrUnsynchronized = errors.New("server not synchronised (leap 3)")
	// ErrBadStratum: stratum 16 or above (unsynchronised, RFC 5905 7.3).
	ErrBadStratum = errors.New("invalid stratum")
	// ErrOriginMismatch: the reply's origin timestamp is not our transmit
	// timestamp (a stale, duplicated or spoofed packet).
	ErrOriginMismatch = errors.New("origin timestamp does not match the request")
	// ErrZeroTransmit: the server's transmit timestamp is zero.
	ErrZeroTransmit = errors.New("zero transmit timestamp")
	// ErrBadMode: the reply is not in server mode (4).
	ErrBadMode = errors.New("reply is not in server mode")
	// ErrRootDistance: root delay/2 + root dispersion exceeds 16 s
	// (MAXDISP, RFC 5905 7.2).
	ErrRootDistance = errors.New("root distance exceeds 16 s")
	// ErrNegativeDelay: the timestamps give a negative round-trip delay.
	ErrNegativeDelay = errors.New("negative round-trip delay (bogus timestamps)")
	// ErrTimeout: no reply arrived in time.
	ErrTimeout = errors.New("no reply (timeout)")
	// ErrMalformed: the reply cannot be decoded.
	ErrMalformed = errors.New("malformed reply")
	// ErrNotOurs: the packet does not answer the request in flight (a
	// duplicate, a late or spoofed reply); it is ignored, and the
	// exchange stays open.
	ErrNotOurs = errors.New("not a reply to the request in flight")
	// ErrStepped: the clock was stepped during the exchange, so its
	// timestamps do not measure anything.
	ErrStepped = errors.New("the clock was stepped during the exchange")
	// ErrDelay: the round trip took longer than 3 s.
	ErrDelay = errors.New("round-trip delay over 3 s")
	// ErrNoMajority means no point is inside the intervals of more than
	// half of the sources: they disagree and none can be trusted.
	ErrNoMajority = errors.New("no majority of sources agree")
	// ErrRefused: the host answered that nothing listens on that port.
	ErrRefused = errors.New("connection refused (no NTP server on that port)")
)

// KissError is a Kiss-o'-Death reply (RFC 5905 7.4). It matches
// ErrKissOfDeath with errors.Is.
type KissError struct {
	// Code is the four-character kiss code, e.g. "RATE", "DENY", "RSTR".
	Code string
}

func (e *KissError) Error() string { return fmt.Sprintf("kiss-o'-death %s", e.Code) }

// Is makes errors.Is(err, ErrKissOfDeath) true.
func (e *KissError) Is(target error) bool { return target == ErrKissOfDeath }

// maxDistance is MAXDISP of RFC 5905 7.2.
const maxDistance = 16 * time.Second

// Validate reports why r must not be used for synchronisation, or nil.
// The order follows how an operator reads the problem: a KoD first (it says
// what the server wants), then an unsynchronised server, then bad data.
func Validate(r *Response) error {
	switch {
	case r.Mode != modeServer:
		return fmt.Errorf("%w (mode %d)", ErrBadMode, r.Mode)
	case r.Stratum == 0:
		return &KissError{Code: r.RefID}
	case r.Leap == LeapUnsynchronized:
		return ErrUnsynchronized
	case r.Stratum >= 16:
		return fmt.Errorf("%w %d (unsynchronised)", ErrBadStratum, r.Stratum)
	case r.TransmitZero:
		return ErrZeroTransmit
	case r.Delay < 0:
		return ErrNegativeDelay
	case r.RootDelay/2+r.RootDispersion > maxDistance:
		return ErrRootDistance
	}
	return nil
}

// Verdict is the short reason shown in the verdict column: "ok" or why the
// reply is not used.
func Verdict(err error) string {
	var kod *KissError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &kod):
		return "KoD " + kod.Code
	case errors.Is(err, ErrUnsynchronized):
		return "unsynchronised"
	case errors.Is(err, ErrBadStratum):
		return "bad stratum"
	case errors.Is(err, ErrOriginMismatch):
		return "origin mismatch"
	case errors.Is(err, ErrZeroTransmit):
		return "zero transmit"
	case errors.Is(err, ErrBadMode):
		return "bad mode"
	case errors.Is(err, ErrRootDistance):
		return "root distance"
	case errors.Is(err, ErrNegativeDelay):
		return "negative delay"
	case errors.Is(err, ErrTimeout):
		return "timeout"
	case errors.Is(err, ErrRefused):
		return "refused"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	}
	return "error"
}
