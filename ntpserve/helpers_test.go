package ntpserve

import (
	"encoding/binary"
	"time"

	"github.com/ntptool/ntptool/ntpwire"
)

// mkReq builds a request header: version, mode, transmit timestamp, and an
// optional trailer after the 48 bytes.
func mkReq(version, mode uint8, xmt ntpwire.Timestamp, trailer ...byte) []byte {
	b := make([]byte, HeaderLen, HeaderLen+len(trailer))
	b[0] = version<<3 | mode
	b[2] = 6 // poll 64 s
	b[3] = 0xec
	binary.BigEndian.PutUint64(b[offTransmit:], uint64(xmt))
	return append(b, trailer...)
}

// ef builds an RFC 7822 extension field of the given type and total length.
func ef(typ uint16, length int) []byte {
	b := make([]byte, length)
	binary.BigEndian.PutUint16(b, typ)
	binary.BigEndian.PutUint16(b[2:], uint16(length))
	return b
}

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

// fields decodes a reply for comparison.
type fields struct {
	Leap, Version, Mode, Stratum uint8
	Poll, Precision              int8
	RootDelay, RootDisp, RefID   uint32
	Ref, Org, Rec, Xmt           ntpwire.Timestamp
}

func decode(b []byte) fields {
	return fields{
		Leap: b[0] >> 6, Version: (b[0] >> 3) & 7, Mode: b[0] & 7, Stratum: b[1],
		Poll: int8(b[2]), Precision: int8(b[3]),
		RootDelay: binary.BigEndian.Uint32(b[4:]), RootDisp: binary.BigEndian.Uint32(b[8:]),
		RefID: binary.BigEndian.Uint32(b[12:]),
		Ref:   ntpwire.Timestamp(binary.BigEndian.Uint64(b[16:])), Org: ntpwire.Timestamp(binary.BigEndian.Uint64(b[24:])),
		Rec: ntpwire.Timestamp(binary.BigEndian.Uint64(b[32:])), Xmt: ntpwire.Timestamp(binary.BigEndian.Uint64(b[40:])),
	}
}

// t2026 is a fixed instant for the pure tests.
var t2026 = time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)
