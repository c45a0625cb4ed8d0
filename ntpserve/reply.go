package ntpserve

import (
	"encoding/binary"
	"time"

	"github.com/ntptool/ntptool/ntpwire"
)

// Kiss codes (RFC 5905 §7.4) as reference identifiers.
const (
	// KissRate asks the client to reduce its request rate.
	KissRate = 'R'<<24 | 'A'<<16 | 'T'<<8 | 'E'
	// KissDeny tells the client that access is denied.
	KissDeny = 'D'<<24 | 'E'<<16 | 'N'<<8 | 'Y'
)

// BuildReply writes the server-mode reply to r into out (at least HeaderLen
// bytes) and returns its length, HeaderLen. rx is when the request arrived,
// tx the transmit timestamp (the server may patch it later with
// SetTransmit), st the server state. It follows RFC 5905 §9.2 (fast_xmit):
// version as requested, origin = the request's transmit timestamp.
func BuildReply(out []byte, r Request, rx, tx ntpwire.Timestamp, st *State) int {
	_ = out[HeaderLen-1]
	out[offLVM] = st.Leap<<6 | r.Version<<3 | ModeServer
	out[offStratum] = st.Stratum
	out[offPoll] = byte(r.Poll)
	out[offPrecision] = byte(st.Precision)
	binary.BigEndian.PutUint32(out[offRootDelay:], ntpwire.ShortFromDuration(st.RootDelay))
	binary.BigEndian.PutUint32(out[offRootDisp:], ntpwire.ShortFromDuration(st.rootDispersionAt(rx)))
	binary.BigEndian.PutUint32(out[offRefID:], st.RefID)
	binary.BigEndian.PutUint64(out[offRefTime:], uint64(st.RefTime))
	binary.BigEndian.PutUint64(out[offOrigin:], uint64(r.Transmit))
	binary.BigEndian.PutUint64(out[offReceive:], uint64(rx))
	binary.BigEndian.PutUint64(out[offTransmit:], uint64(tx))
	return HeaderLen
}

// SetTransmit overwrites the transmit timestamp of a reply built by
// BuildReply: the server stamps a batch just before sending it.
func SetTransmit(reply []byte, tx ntpwire.Timestamp) {
	binary.BigEndian.PutUint64(reply[offTransmit:], uint64(tx))
}

// BuildKoD writes a Kiss-o'-Death reply (RFC 5905 §7.4: leap 3, stratum 0,
// the kiss code as refid) to r into out and returns its length, HeaderLen.
// Like ntpd, the origin, receive and transmit timestamps all echo the
// request's transmit timestamp: a KoD gives no time to a client that is
// refused it, and the echoed origin still lets the client match it to its
// request. poll is the poll exponent advised to the client.
func BuildKoD(out []byte, r Request, code uint32, poll int8) int {
	_ = out[HeaderLen-1]
	clear(out[:HeaderLen])
	out[offLVM] = LeapUnsynch<<6 | r.Version<<3 | ModeServer
	out[offPoll] = byte(max(poll, r.Poll))
	binary.BigEndian.PutUint32(out[offRefID:], code)
	binary.BigEndian.PutUint64(out[offOrigin:], uint64(r.Transmit))
	binary.BigEndian.PutUint64(out[offReceive:], uint64(r.Transmit))
	binary.BigEndian.PutUint64(out[offTransmit:], uint64(r.Transmit))
	return HeaderLen
}

// Respond is the pure server core without access control or rate limiting:
// it parses req and, if it is a request this server answers, writes the
// reply into out (at least HeaderLen bytes). It returns the reply length (0
// when dropped) and the verdict. The reply is never longer than req.
func Respond(out, req []byte, rx, tx ntpwire.Timestamp, st *State) (int, Verdict) {
	r, v := ParseRequest(req)
	if v != Reply {
		return 0, v
	}
	return BuildReply(out, r, rx, tx, st), Reply
}

// pollForInterval returns the smallest poll exponent (log2 s) whose interval
// is at least d, clamped to the NTP range [0, 17].
func pollForInterval(d time.Duration) int8 {
	p := int8(0)
	for p < 17 && time.Duration(1<<p)*time.Second < d {
		p++
	}
	return p
}
