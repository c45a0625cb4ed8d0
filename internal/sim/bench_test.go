package sim

import (
	"testing"
	"time"
)

// BenchmarkKernel50000s is the client kernel alone over 50 000 simulated
// seconds with wander: 50 000 per-second updates.
func BenchmarkKernel50000s(b *testing.B) {
	for b.Loop() {
		k, err := NewKernel(ClockConfig{F0: 1e-4, Wander: 1e-9}, NewGen(1))
		if err != nil {
			b.Fatal(err)
		}
		k.AdvanceTo(50000 * time.Second)
	}
}

// BenchmarkSim50000s is a whole scenario of 50 000 simulated seconds: the
// per-second updates and samples, and a stand-in engine polling every 64 s
// (about 2 350 events: timers, request arrivals, reply deliveries), each
// reply making three adjtimex calls.
func BenchmarkSim50000s(b *testing.B) {
	for b.Loop() {
		runPing(b, 1, 50000*time.Second)
	}
}
