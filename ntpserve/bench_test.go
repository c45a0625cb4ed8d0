package ntpserve

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/ntptool/ntptool/ntpwire"
)

func BenchmarkRespond(b *testing.B) {
	req := mkReq(4, ModeClient, 0x1122334455667788)
	out := make([]byte, HeaderLen)
	st := &State{Stratum: 2, RefID: LocalRefID, RootDispersion: time.Millisecond, DispersionRatePPM: 15, RefTime: 1 << 32}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		Respond(out, req, ntpwire.Timestamp(i)<<32, ntpwire.Timestamp(i)<<32+1, st)
	}
}

// BenchmarkHandle is the whole per-packet policy: parse, ACL, rate limit
// (a table of 65536 slots, 4096 distinct clients), build.
func BenchmarkHandle(b *testing.B) {
	s, err := New(Config{Allow: []string{"10.0.0.0/8"}, Deny: []string{"10.99.0.0/16"},
		RateLimit: RateLimitConfig{Interval: time.Nanosecond, Burst: 16}}, &AtomicState{}, func() time.Time { return t2026 }, nil)
	if err != nil {
		b.Fatal(err)
	}
	req := mkReq(4, ModeClient, 0x1122334455667788)
	out := make([]byte, HeaderLen)
	st := &State{Stratum: 2}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		a := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8 & 15), byte(i)})
		s.handle(out, req, a, 0, int64(i)*1000, st)
	}
}

func BenchmarkRateLimiterParallel(b *testing.B) {
	l, err := NewRateLimiter(RateLimitConfig{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			l.Allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), int64(i))
		}
	})
}

// TestServeNoAllocsPerPacket exchanges 5000 requests over loopback with a
// running server and counts heap allocations in the whole process: the hot
// path (recvmmsg, policy, sendmmsg) must not allocate per packet.
func TestServeNoAllocsPerPacket(t *testing.T) {
	s := startServer(t, Config{Listen: []string{"127.0.0.1:0"}, Workers: 1, DisableRateLimit: true}, localStratum2(t))
	c := dial(t, "", s.Addrs()[0])
	req := mkReq(4, ModeClient, 1)
	buf := make([]byte, 512)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	roundTrip := func() {
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	for range 100 { // warm up (first-use allocations)
		roundTrip()
	}
	const n = 5000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		roundTrip()
	}
	runtime.ReadMemStats(&after)
	per := float64(after.Mallocs-before.Mallocs) / n
	t.Logf("%.3f allocations per request/reply (client and server together)", per)
	if per > 0.05 {
		t.Errorf("%.3f allocations per packet", per)
	}
}
