package ntpserve

import (
	"testing"

	"github.com/ntptool/ntptool/ntpwire"

	"github.com/google/go-cmp/cmp"
)

func TestParseRequest(t *testing.T) {
	const xmt = ntpwire.Timestamp(0xeb1b2c3d_80000000)
	tests := []struct {
		name string
		req  []byte
		want Verdict
		efs  int
	}{
		{"v4 client", mkReq(4, ModeClient, xmt), Reply, 0},
		{"v3 client", mkReq(3, ModeClient, xmt), Reply, 0},
		{"v2 client", mkReq(2, ModeClient, xmt), Reply, 0},
		{"v1 client", mkReq(1, ModeClient, xmt), Reply, 0},
		{"v1 mode 0 (NTPv1 has no mode)", mkReq(1, ModeReserved, xmt), Reply, 0},
		{"zero transmit timestamp", mkReq(4, ModeClient, 0), Reply, 0},
		{"empty", nil, DropShort, 0},
		{"47 bytes", mkReq(4, ModeClient, xmt)[:47], DropShort, 0},
		{"mode 6 control", mkReq(2, ModeControl, 0), DropControl, 0},
		{"mode 6 with bad version", mkReq(0, ModeControl, 0), DropControl, 0},
		{"mode 7 private (monlist)", mkReq(2, ModePrivate, 0, make([]byte, 144)...), DropPrivate, 0},
		{"mode 4 server", mkReq(4, ModeServer, xmt), DropMode, 0},
		{"mode 5 broadcast", mkReq(4, ModeBroadcast, xmt), DropMode, 0},
		{"mode 1 symmetric active", mkReq(4, ModeSymActive, xmt), DropMode, 0},
		{"mode 2 symmetric passive", mkReq(4, ModeSymPassive, xmt), DropMode, 0},
		{"mode 0 v4", mkReq(4, ModeReserved, xmt), DropMode, 0},
		{"version 0", mkReq(0, ModeClient, xmt), DropVersion, 0},
		{"version 5", mkReq(5, ModeClient, xmt), DropVersion, 0},
		{"version 7", mkReq(7, ModeClient, xmt), DropVersion, 0},
		{"unknown extension field", mkReq(4, ModeClient, xmt, ef(0x1234, 28)...), Reply, 1},
		{"two extension fields", mkReq(4, ModeClient, xmt, cat(ef(0x0104, 16), ef(0x0204, 104))...), Reply, 2},
		{"short last extension field is a MAC", mkReq(4, ModeClient, xmt, ef(0x1234, 20)...), DropAuth, 0},
		{"extension field + MD5 MAC", mkReq(4, ModeClient, xmt, cat(ef(0x1234, 16), make([]byte, 20))...), DropAuth, 1},
		{"MD5 MAC", mkReq(4, ModeClient, xmt, make([]byte, 20)...), DropAuth, 0},
		{"SHA1 MAC", mkReq(4, ModeClient, xmt, make([]byte, 24)...), DropAuth, 0},
		{"v3 MD5 MAC", mkReq(3, ModeClient, xmt, make([]byte, 20)...), DropAuth, 0},
		{"crypto-NAK", mkReq(4, ModeClient, xmt, 0, 0, 0, 0), DropAuth, 0},
		{"3 stray bytes", mkReq(4, ModeClient, xmt, 1, 2, 3), DropMalformed, 0},
		{"extension field longer than packet", mkReq(4, ModeClient, xmt, ef(0x1234, 28)[:24]...), DropAuth, 0},
		{"extension field length not a multiple of 4", mkReq(4, ModeClient, xmt, append(ef(0x1234, 30)[:2], append([]byte{0, 30}, make([]byte, 26)...)...)...), DropMalformed, 0},
		{"v3 with extension field (no EFs before v4)", mkReq(3, ModeClient, xmt, ef(0x1234, 100)...), DropMalformed, 0},
		{"v3 with 28-byte trailer is a MAC", mkReq(3, ModeClient, xmt, ef(0x1234, 28)...), DropAuth, 0},
		{"oversized trailer", mkReq(4, ModeClient, xmt, make([]byte, 72)...), DropMalformed, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, v := ParseRequest(tc.req)
			if diff := cmp.Diff(tc.want.String(), v.String()); diff != "" {
				t.Fatalf("verdict (-want +got):\n%s", diff)
			}
			if v != Reply {
				return
			}
			want := Request{Version: tc.req[0] >> 3 & 7, Poll: 6, Transmit: ntpwire.Timestamp(uint64(tc.req[40])<<56 | uint64(tc.req[41])<<48 | uint64(tc.req[42])<<40 | uint64(tc.req[43])<<32 | uint64(tc.req[44])<<24 | uint64(tc.req[45])<<16 | uint64(tc.req[46])<<8 | uint64(tc.req[47])), ExtensionFields: tc.efs}
			if diff := cmp.Diff(want, r); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

func TestVerdictNames(t *testing.T) {
	for v := Verdict(0); v < numVerdicts; v++ {
		if verdictNames[v] == "" {
			t.Errorf("verdict %d has no name", v)
		}
	}
	if got := numVerdicts.String(); got != "unknown" {
		t.Errorf("out-of-range verdict = %q", got)
	}
}
