package gcpace

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestLimit(t *testing.T) {
	const MiB = 1 << 20
	tests := []struct {
		name                  string
		overhead, live, floor uint64
		want                  int64
	}{
		{"floor", 5 * MiB, 1 * MiB, 4 * MiB, 5*MiB + 4*MiB + 1*MiB},
		{"twice the live heap", 40 * MiB, 50 * MiB, 4 * MiB, 40*MiB + 100*MiB + 3*MiB},
		{"no floor", 3 * MiB, 0, 0, 3*MiB + 1*MiB},
		{"live overflows twice", 0, 1 << 63, 0, 1<<60 + (1<<60)/100*3},
		{"huge", 1 << 63, 1 << 62, 0, 1<<61 + (1<<60)/100*3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Limit(tt.overhead, tt.live, tt.floor); got != tt.want {
				t.Errorf("Limit = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestStart paces this test binary's collector: GOGC goes off, the limit
// follows the live heap after each collection, and garbage is still
// collected.
func TestStart(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	limits := make(chan int64, 100)
	const floorBytes = 4 << 20 // the runtime's own minimum heap goal
	p := start(floorBytes, func(l int64) {
		select {
		case limits <- l:
		default:
		}
	})
	if p == nil {
		t.Fatal("start refused with GOGC and GOMEMLIMIT unset")
	}
	t.Cleanup(func() {
		p.stopped.Store(true)
		debug.SetGCPercent(100)
		debug.SetMemoryLimit(math.MaxInt64)
	})
	if got := debug.SetGCPercent(-1); got != -1 {
		t.Errorf("GOGC after start = %d, want -1 (off)", got)
	}
	// A live heap of 64 MiB: after a collection the limit allows 128 MiB.
	const liveBytes = 64 << 20
	live := make([]byte, liveBytes)
	<-limits // start's own
	runtime.GC()
	deadline := time.After(10 * time.Second)
	for limit := int64(0); limit < 2*liveBytes; {
		select {
		case limit = <-limits:
		case <-deadline:
			t.Fatalf("no limit for a %d MiB live heap after a collection (last %d MiB)", liveBytes>>20, limit>>20)
		}
	}
	runtime.KeepAlive(live)
	debug.FreeOSMemory() // live is dead: a collection, and its pages go back
	for limit := int64(1 << 62); limit > 16<<20; {
		select {
		case limit = <-limits:
		case <-deadline:
			t.Fatalf("the limit stayed at %d MiB after the live heap went", limit>>20)
		}
	}

	// 1 GiB of garbage, 64 KiB at a time: collected every few MiB, as
	// at GOGC=100 with its 4 MiB minimum heap goal (which makes about 300
	// collections of it). The peak is only logged: allocating this fast
	// outruns the collector, with or without the pacer.
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	cycles := s[0].Value.Uint64()
	var peak uint64
	var sink []byte
	for i := 0; i < 1<<14; i++ {
		sink = make([]byte, 64<<10)
		if i%16 == 0 {
			metrics.Read(s)
			peak = max(peak, s[1].Value.Uint64())
		}
	}
	runtime.KeepAlive(sink)
	metrics.Read(s)
	if n := s[0].Value.Uint64() - cycles; n < 100 {
		t.Errorf("%d collections for 1 GiB of garbage, want at least 100", n)
	}
	t.Logf("%d collections, heap objects at most %d MiB", s[0].Value.Uint64()-cycles, peak>>20)
}
