package ntpserve

import (
	"encoding/binary"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// TestFloodBoundedMemory feeds 1.2 million requests from distinct source
// addresses (IPv4 and IPv6, as spoofers would) through the whole per-packet
// policy, rate limiter included, on a fake clock (1 µs per packet). The
// limiter's table is allocated once, so the heap must not grow; meanwhile a
// real client that sends too fast must stay limited (its slot is not lost
// to the flood).
func TestFloodBoundedMemory(t *testing.T) {
	const sources = 1_200_000
	s := newTestServer(t, Config{RateLimit: RateLimitConfig{Interval: time.Second, Burst: 16, KoD: true}})
	st := &State{Stratum: 2, RefID: LocalRefID}
	req := mkReq(4, ModeClient, 1)
	out := make([]byte, HeaderLen)
	heavy := netip.MustParseAddr("198.51.100.200")
	t0 := t2026.UnixNano()

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapAlloc, ms.HeapAlloc
	var heavyAnswered, floodAnswered int
	for i := range sources {
		var a netip.Addr
		if i%2 == 0 {
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], 0x0a000000+uint32(i)) // 10.0.0.0/8
			a = netip.AddrFrom4(b)
		} else {
			b := [16]byte{0x20, 0x01, 0x0d, 0xb8}
			binary.BigEndian.PutUint64(b[8:], uint64(i))
			a = netip.AddrFrom16(b)
		}
		now := t0 + int64(i)*1000
		if _, v := s.handle(out, req, a, 0, now, st); v == Reply {
			floodAnswered++
		}
		if i%1000 == 0 {
			if _, v := s.handle(out, req, heavy, 0, now, st); v == Reply {
				heavyAnswered++
			}
		}
		if i%100_000 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
	}
	runtime.ReadMemStats(&ms)
	peak = max(peak, ms.HeapAlloc)
	growth := int64(peak) - int64(base)
	t.Logf("%d distinct sources: heap %.2f MB before, peak %.2f MB (growth %+d bytes); limiter table %d slots = %.2f MB; process Sys %.1f MB",
		sources, float64(base)/1e6, float64(peak)/1e6, growth, s.limiter.Slots(), float64(s.limiter.Slots()*24)/1e6, float64(ms.Sys)/1e6)
	if growth > 256<<10 {
		t.Errorf("heap grew by %d bytes during the flood", growth)
	}
	if floodAnswered != sources {
		t.Errorf("%d of %d one-off sources answered", floodAnswered, sources)
	}
	// 1200 requests over 1.2 s, burst 16 + 1 per second.
	if heavyAnswered > 20 || heavyAnswered < 16 {
		t.Errorf("fast client answered %d times during the flood, want 16–20", heavyAnswered)
	}
}
