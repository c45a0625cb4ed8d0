package netio

import (
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"
)

// Sizes of what the kernel writes into control messages (64-bit Linux).
const (
	timespecLen   = 16                 // struct timespec
	scmTSLen      = 3 * timespecLen    // struct scm_timestamping: software, (deprecated), hardware
	extErrLen     = 16                 // struct sock_extended_err
	cmsgHdrLen    = unix.SizeofCmsghdr // 16
	cmsgAlign     = 8
	controlBufLen = 256 // room for SCM_TIMESTAMPNS, SCM_TIMESTAMPING and an IP(V6)_RECVERR
)

// cmsg is one control message: level, type and data.
type cmsg struct {
	level, typ int32
	data       []byte
}

// walkCmsgs calls f for each well-formed control message in b (what
// recvmsg wrote into the control buffer) and stops at the first malformed
// header: the kernel writes them, but a parser must never trust a length.
func walkCmsgs(b []byte, f func(cmsg)) {
	for len(b) >= cmsgHdrLen {
		l := binary.NativeEndian.Uint64(b[0:8])
		if l < cmsgHdrLen || l > uint64(len(b)) {
			return
		}
		f(cmsg{
			level: int32(binary.NativeEndian.Uint32(b[8:12])),
			typ:   int32(binary.NativeEndian.Uint32(b[12:16])),
			data:  b[cmsgHdrLen:l],
		})
		next := (l + cmsgAlign - 1) &^ (cmsgAlign - 1)
		if next >= uint64(len(b)) {
			return
		}
		b = b[next:]
	}
}

// timespec decodes a struct timespec; ok is false when it is too short,
// zero (no timestamp) or out of range.
func timespec(b []byte) (time.Time, bool) {
	if len(b) < timespecLen {
		return time.Time{}, false
	}
	sec := int64(binary.NativeEndian.Uint64(b[0:8]))
	nsec := int64(binary.NativeEndian.Uint64(b[8:16]))
	if sec < 0 || nsec < 0 || nsec >= 1e9 || sec == 0 && nsec == 0 {
		return time.Time{}, false
	}
	return time.Unix(sec, nsec), true
}

// rxTimestamp finds the kernel's receive timestamp of a packet:
// SCM_TIMESTAMPNS, else the software stamp of an SCM_TIMESTAMPING.
func rxTimestamp(control []byte) (time.Time, bool) {
	var ns, ts time.Time
	var haveNS, haveTS bool
	walkCmsgs(control, func(m cmsg) {
		if m.level != unix.SOL_SOCKET {
			return
		}
		switch m.typ {
		case unix.SCM_TIMESTAMPNS:
			ns, haveNS = timespec(m.data)
		case unix.SCM_TIMESTAMPING:
			ts, haveTS = timespec(m.data)
		}
	})
	if haveNS {
		return ns, true
	}
	return ts, haveTS
}

// txTimestamp decodes one message from the error queue: a software
// transmit timestamp (SCM_TIMESTAMPING) with its sock_extended_err saying
// it is one (origin SO_EE_ORIGIN_TIMESTAMPING, SCM_TSTAMP_SND) and, with
// OPT_ID, the send's key. Anything else (an ICMP error) is not one.
func txTimestamp(control []byte) (stamp time.Time, key uint32, ok bool) {
	var haveTS, isStamp bool
	walkCmsgs(control, func(m cmsg) {
		switch {
		case m.level == unix.SOL_SOCKET && m.typ == unix.SCM_TIMESTAMPING && len(m.data) >= scmTSLen:
			stamp, haveTS = timespec(m.data)
		case m.level == unix.SOL_IP && m.typ == unix.IP_RECVERR && len(m.data) >= extErrLen,
			m.level == unix.SOL_IPV6 && m.typ == unix.IPV6_RECVERR && len(m.data) >= extErrLen:
			// struct sock_extended_err: errno u32, origin u8, type u8,
			// code u8, pad u8, info u32, data u32.
			origin := m.data[4]
			info := binary.NativeEndian.Uint32(m.data[8:12])
			if origin == unix.SO_EE_ORIGIN_TIMESTAMPING && info == unix.SCM_TSTAMP_SND {
				isStamp = true
				key = binary.NativeEndian.Uint32(m.data[12:16])
			}
		}
	})
	return stamp, key, haveTS && isStamp
}
