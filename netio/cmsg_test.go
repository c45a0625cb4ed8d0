package netio

import (
	"encoding/binary"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// mkCmsg builds one control message as the kernel lays it out.
func mkCmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	binary.NativeEndian.PutUint64(b[0:], uint64(cmsgHdrLen+len(data)))
	binary.NativeEndian.PutUint32(b[8:], uint32(level))
	binary.NativeEndian.PutUint32(b[12:], uint32(typ))
	copy(b[cmsgHdrLen:], data)
	return b
}

func ts(sec, nsec int64) []byte {
	b := make([]byte, timespecLen)
	binary.NativeEndian.PutUint64(b[0:], uint64(sec))
	binary.NativeEndian.PutUint64(b[8:], uint64(nsec))
	return b
}

func scmTimestamping(sw []byte) []byte {
	return append(append(append([]byte{}, sw...), ts(0, 0)...), ts(0, 0)...)
}

func extErr(origin uint8, info, data uint32) []byte {
	b := make([]byte, extErrLen)
	binary.NativeEndian.PutUint32(b[0:], uint32(unix.ENOMSG))
	b[4] = origin
	binary.NativeEndian.PutUint32(b[8:], info)
	binary.NativeEndian.PutUint32(b[12:], data)
	return b
}

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

func TestRxTimestamp(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 123_456_789)
	tests := []struct {
		name    string
		control []byte
		want    time.Time
		ok      bool
	}{
		{"none", nil, time.Time{}, false},
		{"SCM_TIMESTAMPNS", mkCmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, ts(t0.Unix(), 123_456_789)), t0, true},
		{"SCM_TIMESTAMPING only", mkCmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPING, scmTimestamping(ts(t0.Unix(), 123_456_789))), t0, true},
		{"both: SCM_TIMESTAMPNS wins", cat(mkCmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPING, scmTimestamping(ts(5, 0))),
			mkCmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, ts(t0.Unix(), 123_456_789))), t0, true},
		{"another level", mkCmsg(unix.SOL_IP, unix.SCM_TIMESTAMPNS, ts(1, 0)), time.Time{}, false},
		{"zero stamp", mkCmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, ts(0, 0)), time.Time{}, false},
		{"bad nanoseconds", mkCmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, ts(1, 1e9)), time.Time{}, false},
		{"short data", mkCmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, make([]byte, 8)), time.Time{}, false},
		{"length beyond the buffer", mkCmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, ts(1, 0))[:20], time.Time{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := rxTimestamp(tc.control)
			if ok != tc.ok || !got.Equal(tc.want) {
				t.Errorf("rxTimestamp = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestTxTimestamp(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 5)
	stamp := mkCmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPING, scmTimestamping(ts(t0.Unix(), 5)))
	tests := []struct {
		name    string
		control []byte
		key     uint32
		ok      bool
	}{
		{"IPv4", cat(stamp, mkCmsg(unix.SOL_IP, unix.IP_RECVERR, extErr(unix.SO_EE_ORIGIN_TIMESTAMPING, unix.SCM_TSTAMP_SND, 41))), 41, true},
		{"IPv6", cat(stamp, mkCmsg(unix.SOL_IPV6, unix.IPV6_RECVERR, extErr(unix.SO_EE_ORIGIN_TIMESTAMPING, unix.SCM_TSTAMP_SND, 7))), 7, true},
		{"an ICMP error is no stamp", cat(stamp, mkCmsg(unix.SOL_IP, unix.IP_RECVERR, extErr(2 /* SO_EE_ORIGIN_ICMP */, 0, 0))), 0, false},
		{"a scheduling stamp is no transmit stamp", cat(stamp, mkCmsg(unix.SOL_IP, unix.IP_RECVERR, extErr(unix.SO_EE_ORIGIN_TIMESTAMPING, unix.SCM_TSTAMP_SCHED, 1))), 0, false},
		{"no extended error", stamp, 0, false},
		{"no timestamp", mkCmsg(unix.SOL_IP, unix.IP_RECVERR, extErr(unix.SO_EE_ORIGIN_TIMESTAMPING, unix.SCM_TSTAMP_SND, 3)), 3, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, key, ok := txTimestamp(tc.control)
			if ok != tc.ok || key != tc.key || ok && !got.Equal(t0) {
				t.Errorf("txTimestamp = %v, key %d, %v; want %v, key %d, %v", got, key, ok, t0, tc.key, tc.ok)
			}
		})
	}
}

// The control-message parsers take whatever bytes come and never panic.
func FuzzControl(f *testing.F) {
	f.Add(mkCmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, ts(1, 2)))
	f.Add(cat(mkCmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPING, scmTimestamping(ts(3, 4))),
		mkCmsg(unix.SOL_IP, unix.IP_RECVERR, extErr(unix.SO_EE_ORIGIN_TIMESTAMPING, unix.SCM_TSTAMP_SND, 1))))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if rx, ok := rxTimestamp(b); ok && rx.IsZero() {
			t.Error("ok with a zero receive time")
		}
		if tx, _, ok := txTimestamp(b); ok && tx.IsZero() {
			t.Error("ok with a zero transmit time")
		}
		n := 0
		walkCmsgs(b, func(m cmsg) {
			n++
			if len(m.data) > len(b) {
				t.Error("data longer than the buffer")
			}
		})
		if n > len(b)/cmsgHdrLen {
			t.Errorf("%d messages from %d bytes", n, len(b))
		}
	})
}
