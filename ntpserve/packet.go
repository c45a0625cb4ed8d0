package ntpserve

import (
	"encoding/binary"

	"github.com/ntptool/ntptool/ntpwire"
)

// HeaderLen is the length of the NTP header (RFC 5905 §7.3, Figure 8); a
// shorter packet is never answered and every reply is exactly this long.
const HeaderLen = 48

// Modes of the first octet (RFC 5905 §7.3, Figure 10).
const (
	ModeReserved   = 0 // NTPv1 has no mode field: a v1 mode-0 packet is a client request.
	ModeSymActive  = 1
	ModeSymPassive = 2
	ModeClient     = 3
	ModeServer     = 4
	ModeBroadcast  = 5
	ModeControl    = 6 // NTP control messages (ntpq); never answered.
	ModePrivate    = 7 // ntpd private messages (ntpdc, "monlist"); never answered.
)

// Leap indicator values (RFC 5905 §7.3, Figure 9).
const (
	LeapNone    = 0 // no warning
	LeapInsert  = 1 // last minute of the day has 61 seconds
	LeapDelete  = 2 // last minute of the day has 59 seconds
	LeapUnsynch = 3 // unknown (clock unsynchronised)
)

// MaxStratum is the "unsynchronised" stratum (RFC 5905 §7.3: 16).
const MaxStratum = 16

// Offsets of the header fields (RFC 5905 §7.3, Figure 8).
const (
	offLVM       = 0
	offStratum   = 1
	offPoll      = 2
	offPrecision = 3
	offRootDelay = 4
	offRootDisp  = 8
	offRefID     = 12
	offRefTime   = 16
	offOrigin    = 24
	offReceive   = 32
	offTransmit  = 40
)

// Verdict says what the server does with one request: answer it (Reply),
// answer it with a Kiss-o'-Death, or drop it for a counted reason.
type Verdict uint8

// Verdicts. The drop reasons are the keys of Stats.
const (
	// Reply: a normal server-mode reply was built.
	Reply Verdict = iota
	// KoDRate: the client is over its rate limit; a KoD RATE was built.
	KoDRate
	// KoDDeny: the client is denied and DenyKoD is set; a KoD DENY was built.
	KoDDeny
	// DropShort: shorter than the 48-byte header.
	DropShort
	// DropVersion: a version other than 1–4.
	DropVersion
	// DropControl: mode 6 (NTP control, ntpq).
	DropControl
	// DropPrivate: mode 7 (ntpd private, ntpdc/monlist).
	DropPrivate
	// DropMode: any other mode that is not a client request (1, 2, 4, 5).
	DropMode
	// DropMalformed: the bytes after the header are neither valid RFC 7822
	// extension fields nor a MAC.
	DropMalformed
	// DropAuth: the request carries a MAC (or crypto-NAK); without keys no
	// authenticated reply can be made, and an unauthenticated one would be
	// discarded by the client anyway.
	DropAuth
	// DropDenied: the client address is denied by the access list.
	DropDenied
	// DropRate: the client is over its rate limit.
	DropRate
	// numVerdicts is the number of verdicts (array sizes).
	numVerdicts
)

var verdictNames = [numVerdicts]string{
	Reply:         "reply",
	KoDRate:       "kod_rate",
	KoDDeny:       "kod_deny",
	DropShort:     "short",
	DropVersion:   "bad_version",
	DropControl:   "mode6_control",
	DropPrivate:   "mode7_private",
	DropMode:      "bad_mode",
	DropMalformed: "malformed",
	DropAuth:      "auth",
	DropDenied:    "denied",
	DropRate:      "rate",
}

// String returns the verdict's snake_case name, as used in logs and metrics.
func (v Verdict) String() string {
	if v < numVerdicts {
		return verdictNames[v]
	}
	return "unknown"
}

// Answered reports whether the verdict sends a packet back.
func (v Verdict) Answered() bool { return v <= KoDDeny }

// Request is what the server needs from a valid client request.
type Request struct {
	// Version is the request's version (1–4); the reply uses the same.
	Version uint8
	// Poll is the client's poll exponent (log2 s), echoed in the reply.
	Poll int8
	// Transmit is the client's transmit timestamp; it becomes the reply's
	// origin timestamp (RFC 5905 §9.2, "org ← xmt").
	Transmit ntpwire.Timestamp
	// ExtensionFields is the number of RFC 7822 extension fields that were
	// skipped (tolerated, not answered).
	ExtensionFields int
}

// MAC sizes (RFC 5905 §7.3 and §7.5; RFC 7822 §3): a 4-byte key identifier
// alone is a crypto-NAK; with a digest the MAC is 4+16 (MD5, AES-CMAC) or
// 4+20 (SHA-1) bytes, and implementations allow digests up to 64 bytes.
const (
	minMACLen = 4
	maxMACLen = 4 + 64
	// minEFLen is the smallest extension field (RFC 7822 §3).
	minEFLen = 16
	// minLastEFLen is the smallest extension field that may end a packet
	// without a MAC (RFC 7822 §3): shorter trailers are read as a MAC.
	minLastEFLen = 28
)

// ParseRequest checks that b is an NTP client request this server answers
// and returns its fields; when the verdict is not Reply the request must be
// dropped, and the verdict says why. It is pure, allocates nothing and
// accepts any input.
func ParseRequest(b []byte) (Request, Verdict) {
	if len(b) < HeaderLen {
		return Request{}, DropShort
	}
	lvm := b[offLVM]
	version := (lvm >> 3) & 7
	mode := lvm & 7
	// Mode 6 and 7 are checked before the version: whatever their version
	// field says, these are the amplification vectors (monlist) and are
	// counted as such.
	switch mode {
	case ModeControl:
		return Request{}, DropControl
	case ModePrivate:
		return Request{}, DropPrivate
	}
	if version < 1 || version > 4 {
		return Request{}, DropVersion
	}
	if mode != ModeClient && !(mode == ModeReserved && version == 1) {
		return Request{}, DropMode
	}
	req := Request{
		Version:  version,
		Poll:     int8(b[offPoll]),
		Transmit: ntpwire.Timestamp(binary.BigEndian.Uint64(b[offTransmit:])),
	}
	n, v := scanTrailer(b[HeaderLen:], version)
	if v != Reply {
		return Request{}, v
	}
	req.ExtensionFields = n
	return req, Reply
}

// scanTrailer walks the bytes after the header: RFC 7822 extension fields
// (NTPv4 only), then nothing. A trailer that ends in a MAC gets DropAuth;
// anything else that does not parse gets DropMalformed.
func scanTrailer(t []byte, version uint8) (fields int, v Verdict) {
	for len(t) > 0 {
		if version == 4 && len(t) >= minEFLen {
			l := int(binary.BigEndian.Uint16(t[2:]))
			if l >= minEFLen && l%4 == 0 && l <= len(t) {
				last := l == len(t)
				if !last || l >= minLastEFLen {
					fields++
					t = t[l:]
					continue
				}
			}
		}
		if len(t) >= minMACLen && len(t) <= maxMACLen && len(t)%4 == 0 {
			return fields, DropAuth
		}
		return fields, DropMalformed
	}
	return fields, Reply
}
