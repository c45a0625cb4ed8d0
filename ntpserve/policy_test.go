package ntpserve

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ntptool/ntptool/ntpwire"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestACL(t *testing.T) {
	tests := []struct {
		name        string
		allow, deny []string
		want        map[string]bool
	}{
		{"empty allows all", nil, nil, map[string]bool{"192.0.2.1": true, "2001:db8::1": true}},
		{"allow list", []string{"192.0.2.0/24", "2001:db8::/32"}, nil,
			map[string]bool{"192.0.2.9": true, "192.0.3.1": false, "2001:db8::1": true, "2001:db9::1": false, "::ffff:192.0.2.9": true}},
		{"deny wins", []string{"10.0.0.0/8"}, []string{"10.1.0.0/16", "::1"},
			map[string]bool{"10.2.3.4": true, "10.1.2.3": false, "::1": false, "127.0.0.1": false}},
		{"deny only", nil, []string{"198.51.100.7", "::ffff:203.0.113.0/120"},
			map[string]bool{"198.51.100.7": false, "198.51.100.8": true, "203.0.113.5": false, "::ffff:198.51.100.7": false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			acl, err := NewACL(tc.allow, tc.deny)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for a := range tc.want {
				got[a] = acl.Allowed(netip.MustParseAddr(a))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Allowed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestACLErrors(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "nonsense", "fe80::1%eth0", ""} {
		t.Run(bad, func(t *testing.T) {
			if _, err := NewACL([]string{bad}, nil); err == nil {
				t.Errorf("NewACL(%q) succeeded", bad)
			}
		})
	}
}

// newTestServer builds a Server without sockets, for the policy tests.
func newTestServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg, &AtomicState{}, func() time.Time { return t2026 }, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestHandleDropRules runs every drop rule through the whole per-packet
// policy (parse, ACL, rate limit, build) and checks nothing is written back.
func TestHandleDropRules(t *testing.T) {
	s := newTestServer(t, Config{Deny: []string{"192.0.2.0/24"}})
	st := &State{Stratum: 2, RefID: LocalRefID}
	ok := netip.MustParseAddr("198.51.100.1")
	denied := netip.MustParseAddr("192.0.2.77")
	rx := ntpwire.FromTime(t2026)
	tests := []struct {
		name string
		req  []byte
		from netip.Addr
		want Verdict
	}{
		{"short", mkReq(4, ModeClient, 1)[:40], ok, DropShort},
		{"mode 6", mkReq(2, ModeControl, 0), ok, DropControl},
		{"mode 7", mkReq(2, ModePrivate, 0), ok, DropPrivate},
		{"mode 4", mkReq(4, ModeServer, 1), ok, DropMode},
		{"version 0", mkReq(0, ModeClient, 1), ok, DropVersion},
		{"version 5", mkReq(5, ModeClient, 1), ok, DropVersion},
		{"unknown MAC", mkReq(4, ModeClient, 1, make([]byte, 20)...), ok, DropAuth},
		{"denied CIDR", mkReq(4, ModeClient, 1), denied, DropDenied},
		{"good request", mkReq(4, ModeClient, 1), ok, Reply},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := make([]byte, HeaderLen)
			n, v := s.handle(out, tc.req, tc.from, rx, 0, st)
			if diff := cmp.Diff(tc.want.String(), v.String()); diff != "" {
				t.Errorf("verdict (-want +got):\n%s", diff)
			}
			if v.Answered() != (n > 0) || n > len(tc.req) {
				t.Errorf("reply length %d for a %d-byte request, verdict %v", n, len(tc.req), v)
			}
		})
	}
}

func TestHandleDenyKoD(t *testing.T) {
	s := newTestServer(t, Config{Allow: []string{"10.0.0.0/8"}, DenyKoD: true,
		RateLimit: RateLimitConfig{Interval: time.Second, Burst: 2}})
	st := &State{Stratum: 2}
	from := netip.MustParseAddr("192.0.2.1")
	var got []string
	for i := range 4 {
		out := make([]byte, HeaderLen)
		n, v := s.handle(out, mkReq(4, ModeClient, 7), from, 0, int64(i), st)
		got = append(got, v.String())
		if n > 0 && decode(out).RefID != KissDeny {
			t.Errorf("KoD refid %x", decode(out).RefID)
		}
	}
	// KoD DENY is itself rate-limited (burst 2).
	want := []string{"kod_deny", "kod_deny", "denied", "denied"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
}

// TestHandleKoDRateBurst sends a burst from one client on a fake clock: the
// burst is answered, then one KoD RATE, then silence until the KoD holdoff
// passes; requests spaced by the interval are answered again.
func TestHandleKoDRateBurst(t *testing.T) {
	s := newTestServer(t, Config{RateLimit: RateLimitConfig{Interval: time.Second, Burst: 4, KoD: true, KoDHoldoff: 8 * time.Second}})
	st := &State{Stratum: 2}
	from := netip.MustParseAddr("2001:db8::5")
	t0 := t2026.UnixNano()
	verdict := func(at time.Duration) string {
		out := make([]byte, HeaderLen)
		n, v := s.handle(out, mkReq(4, ModeClient, 9), from, 0, t0+int64(at), st)
		if v == KoDRate {
			f := decode(out)
			if f.Stratum != 0 || f.Leap != 3 || f.RefID != KissRate || f.Org != 9 || n != HeaderLen {
				t.Errorf("bad KoD RATE: %+v", f)
			}
			if f.Poll < 0 {
				t.Errorf("KoD poll %d", f.Poll)
			}
		}
		return v.String()
	}
	var got []string
	for i := range 10 { // 10 requests in 10 µs
		got = append(got, verdict(time.Duration(i)*time.Microsecond))
	}
	want := []string{"reply", "reply", "reply", "reply", "kod_rate", "rate", "rate", "rate", "rate", "rate"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("burst (-want +got):\n%s", diff)
	}
	// One interval later one more request is allowed; the KoD holdoff (8 s)
	// keeps the next over-limit request silent.
	got = []string{verdict(1001 * time.Millisecond), verdict(1002 * time.Millisecond), verdict(9 * time.Second), verdict(9*time.Second + 1), verdict(9*time.Second + 2), verdict(9*time.Second + 3)}
	want = []string{"reply", "rate", "reply", "reply", "reply", "reply"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after the burst (-want +got):\n%s", diff)
	}
	if got := verdict(9*time.Second + 4); got != "kod_rate" {
		t.Errorf("after the holdoff: %s, want kod_rate", got)
	}
}

func TestRateLimiterClockStepBack(t *testing.T) {
	l, err := NewRateLimiter(RateLimitConfig{Interval: time.Second, Burst: 1, TableSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr("192.0.2.1")
	now := t2026.UnixNano()
	got := []bool{}
	for _, at := range []int64{now, now + 1, now - int64(time.Hour)} {
		ok, _ := l.Allow(a, at)
		got = append(got, ok)
	}
	// After a step back of an hour the client is not locked out for an hour.
	if diff := cmp.Diff([]bool{true, false, true}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestRateLimiterConfig(t *testing.T) {
	tests := []struct {
		name      string
		cfg       RateLimitConfig
		wantSlots int
		wantErr   bool
	}{
		{"defaults", RateLimitConfig{}, 65536, false},
		{"rounded up", RateLimitConfig{TableSize: 1000}, 1024, false},
		{"negative burst", RateLimitConfig{Burst: -1}, 0, true},
		{"negative interval", RateLimitConfig{Interval: -time.Second}, 0, true},
		{"too big", RateLimitConfig{TableSize: 1 << 30}, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := NewRateLimiter(tc.cfg)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if err == nil && l.Slots() != tc.wantSlots {
				t.Errorf("slots = %d, want %d", l.Slots(), tc.wantSlots)
			}
		})
	}
}

func TestSystemState(t *testing.T) {
	ref := ntpwire.FromTime(t2026)
	tests := []struct {
		name   string
		local  int
		kstate int
		status int32
		maxerr int64
		kerr   error
		want   State
	}{
		{"kernel unsynced, no local stratum", 0, unix.TIME_ERROR, unix.STA_UNSYNC, 16000000, nil,
			State{Leap: LeapUnsynch, Stratum: 16, RootDispersion: 16 * time.Second, Precision: -22}},
		{"adjtimex fails", 0, 0, 0, 0, unix.EPERM,
			State{Leap: LeapUnsynch, Stratum: 16, RootDispersion: 16 * time.Second, Precision: -22}},
		{"kernel unsynced, local stratum 2", 2, unix.TIME_ERROR, unix.STA_UNSYNC, 16000000, nil,
			State{Stratum: 2, RefID: LocalRefID, RefTime: ref, RootDispersion: precisionDuration(-22), DispersionRatePPM: 15, Precision: -22}},
		{"kernel synced by another daemon", 0, unix.TIME_OK, 0, 1500, nil,
			State{Stratum: UnknownUpstreamStratum, RefID: LocalRefID, RefTime: ref, RootDispersion: 1500 * time.Microsecond, DispersionRatePPM: 500, Precision: -22}},
		{"kernel synced, leap second pending, local stratum 3", 3, unix.TIME_INS, unix.STA_INS, 1500, nil,
			State{Leap: LeapInsert, Stratum: 3, RefID: LocalRefID, RefTime: ref, RootDispersion: 1500 * time.Microsecond, DispersionRatePPM: 500, Precision: -22}},
		{"kernel synced, deletion", 0, unix.TIME_DEL, unix.STA_DEL, 0, nil,
			State{Leap: LeapDelete, Stratum: UnknownUpstreamStratum, RefID: LocalRefID, RefTime: ref, RootDispersion: precisionDuration(-22), DispersionRatePPM: 500, Precision: -22}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			src, err := NewSystemSource(SystemConfig{LocalStratum: tc.local, Precision: -22, Kernel: kernelFunc(func(tx *unix.Timex) (int, error) {
				calls++
				if tx.Modes != 0 {
					t.Errorf("adjtimex called with modes %#x", tx.Modes)
				}
				tx.Status, tx.Maxerror = tc.status, tc.maxerr
				return tc.kstate, tc.kerr
			})}, t2026)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, *src.State()); diff != "" {
				t.Errorf("state (-want +got):\n%s", diff)
			}
			if (src.Err() != nil) != (tc.kerr != nil) {
				t.Errorf("Err() = %v", src.Err())
			}
			// Refreshes happen only when due.
			src.MaybeRefresh(t2026.Add(time.Second))
			src.MaybeRefresh(t2026.Add(17 * time.Second))
			if calls != 2 {
				t.Errorf("adjtimex called %d times, want 2", calls)
			}
		})
	}
}

func TestSystemSourceConfig(t *testing.T) {
	for _, s := range []int{-1, 16} {
		if _, err := NewSystemSource(SystemConfig{LocalStratum: s}, t2026); err == nil {
			t.Errorf("local stratum %d accepted", s)
		}
	}
}

// kernelFunc is a KernelReader from a function.
type kernelFunc func(*unix.Timex) (int, error)

func (f kernelFunc) Adjtimex(tx *unix.Timex) (int, error) { return f(tx) }

// The default reader is the host's kernel, read only: it reads.
func TestSystemSourceReadsHostKernel(t *testing.T) {
	src, err := NewSystemSource(SystemConfig{}, t2026)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Err(); err != nil {
		t.Fatalf("read the host kernel: %v", err)
	}
	if st := src.State(); st.Stratum != MaxStratum && st.Stratum != UnknownUpstreamStratum {
		t.Errorf("stratum %d from the host kernel", st.Stratum)
	}
}

func TestMeasurePrecision(t *testing.T) {
	ns := int64(0)
	fake := func() time.Time { ns += 1000; return time.Unix(0, ns) } // 1 µs steps
	if got := MeasurePrecision(fake); got != -19 {
		t.Errorf("MeasurePrecision(1µs clock) = %d, want -19 (2^-19 s = 1.9 µs ≥ 1 µs)", got)
	}
	frozen := func() time.Time { return t2026 }
	if got := MeasurePrecision(frozen); got != DefaultPrecision {
		t.Errorf("MeasurePrecision(frozen) = %d", got)
	}
}
