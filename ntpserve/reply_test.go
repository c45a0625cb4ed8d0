package ntpserve

import (
	"testing"
	"time"

	"github.com/ntptool/ntptool/ntpwire"

	"github.com/google/go-cmp/cmp"
)

func TestBuildReply(t *testing.T) {
	rx := ntpwire.FromTime(t2026)
	tx := rx.Add(20 * time.Microsecond)
	ref := ntpwire.FromTime(t2026.Add(-10 * time.Second))
	const xmt = ntpwire.Timestamp(0xeb1b2c3d_80000000)
	local := &State{Stratum: 2, RefID: LocalRefID, RefTime: ref, RootDelay: 0, RootDispersion: time.Millisecond, Precision: -24}
	growing := &State{Stratum: 3, RefID: 0xc0000201, RefTime: ref, RootDelay: 2 * time.Millisecond, RootDispersion: time.Millisecond, DispersionRatePPM: 500, Precision: -20}
	unsync := &State{Leap: LeapUnsynch, Stratum: MaxStratum, Precision: -20}
	tests := []struct {
		name string
		req  []byte
		st   *State
		want fields
	}{
		{"v4 local stratum 2", mkReq(4, ModeClient, xmt), local,
			fields{Version: 4, Mode: ModeServer, Stratum: 2, Poll: 6, Precision: -24, RootDisp: 66, RefID: LocalRefID, Ref: ref, Org: xmt, Rec: rx, Xmt: tx}},
		{"v3 keeps its version", mkReq(3, ModeClient, xmt), local,
			fields{Version: 3, Mode: ModeServer, Stratum: 2, Poll: 6, Precision: -24, RootDisp: 66, RefID: LocalRefID, Ref: ref, Org: xmt, Rec: rx, Xmt: tx}},
		{"v1 mode 0 gets mode 4", mkReq(1, ModeReserved, xmt), local,
			fields{Version: 1, Mode: ModeServer, Stratum: 2, Poll: 6, Precision: -24, RootDisp: 66, RefID: LocalRefID, Ref: ref, Org: xmt, Rec: rx, Xmt: tx}},
		// 1 ms + 10 s × 500 ppm = 6 ms = 393.2 → 394 (rounded up)
		{"dispersion grows with the reference age", mkReq(4, ModeClient, xmt), growing,
			fields{Version: 4, Mode: ModeServer, Stratum: 3, Poll: 6, Precision: -20, RootDelay: 132, RootDisp: 394, RefID: 0xc0000201, Ref: ref, Org: xmt, Rec: rx, Xmt: tx}},
		{"unsynchronised: leap 3 stratum 16", mkReq(4, ModeClient, xmt), unsync,
			fields{Leap: LeapUnsynch, Version: 4, Mode: ModeServer, Stratum: 16, Poll: 6, Precision: -20, Org: xmt, Rec: rx, Xmt: tx}},
		{"zero transmit → zero origin", mkReq(4, ModeClient, 0), local,
			fields{Version: 4, Mode: ModeServer, Stratum: 2, Poll: 6, Precision: -24, RootDisp: 66, RefID: LocalRefID, Ref: ref, Org: 0, Rec: rx, Xmt: tx}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := make([]byte, HeaderLen)
			n, v := Respond(out, tc.req, rx, tx, tc.st)
			if v != Reply || n != HeaderLen {
				t.Fatalf("Respond = %d, %v; want %d, reply", n, v, HeaderLen)
			}
			if diff := cmp.Diff(tc.want, decode(out)); diff != "" {
				t.Errorf("reply (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBuildKoD(t *testing.T) {
	const xmt = ntpwire.Timestamp(0xeb1b2c3d_80000000)
	r, _ := ParseRequest(mkReq(4, ModeClient, xmt))
	tests := []struct {
		name string
		code uint32
		poll int8
		want fields
	}{
		{"RATE raises the poll", KissRate, 10, fields{Leap: 3, Version: 4, Mode: ModeServer, Poll: 10, RefID: KissRate, Org: xmt, Rec: xmt, Xmt: xmt}},
		{"DENY keeps the client's poll", KissDeny, 0, fields{Leap: 3, Version: 4, Mode: ModeServer, Poll: 6, RefID: KissDeny, Org: xmt, Rec: xmt, Xmt: xmt}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := make([]byte, HeaderLen)
			for i := range out {
				out[i] = 0xaa // BuildKoD must not leave stale bytes
			}
			BuildKoD(out, r, tc.code, tc.poll)
			if diff := cmp.Diff(tc.want, decode(out)); diff != "" {
				t.Errorf("KoD (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPollForInterval(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want int8
	}{{0, 0}, {time.Second, 0}, {2 * time.Second, 1}, {3 * time.Second, 2}, {64 * time.Second, 6}, {1000 * time.Hour, 17}}
	for _, tc := range tests {
		t.Run(tc.d.String(), func(t *testing.T) {
			if diff := cmp.Diff(tc.want, pollForInterval(tc.d)); diff != "" {
				t.Error(diff)
			}
		})
	}
}
