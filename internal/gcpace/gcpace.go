// Package gcpace paces the garbage collector of a long-running, mostly
// idle process by a soft memory limit instead of GOGC, so that it
// collects only when its heap has grown.
//
// Once a Go program has collected once, the runtime forces a collection
// whenever two minutes pass without one. For ntptool run, which
// allocates a few KiB per poll round, that is a collection every two
// minutes for the daemon's lifetime, which with the scavenging after it
// costs as much CPU as all its other work at the default polling
// (bench-daemon: 4.2 ms in two minutes against 2.5 ms without;
// docs/footprint.md).
// The forced collection is off only while GOGC is off; Start turns it off
// and sets the soft memory limit (runtime/debug.SetMemoryLimit) after
// each collection to what GOGC=100 would allow: the live heap twice over,
// at least a floor, plus the runtime's own memory. The heap grows as
// before and no timer collects it.
//
// A GOGC or GOMEMLIMIT in the environment is the operator's choice: Start
// then leaves the collector alone.
package gcpace

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// Limit is the soft memory limit that allows what GOGC=100 would: the
// heap (its objects, live or dead, and its free and unused pages) grows to
// twice the live heap, or to floorBytes, whichever is more, on top of the
// rest of the runtime's memory (stacks, metadata), overheadBytes. The
// runtime aims below a limit by 3 % of its heap, at least 1 MiB
// (runtime/mgcpacer.go); that headroom is added.
func Limit(overheadBytes, liveBytes, floorBytes uint64) int64 {
	const most = 1 << 60 // no overflow below
	heap := min(max(floorBytes, 2*min(liveBytes, most)), most)
	headroom := max(heap/100*3, 1<<20)
	return int64(min(overheadBytes, most) + heap + headroom)
}

// pacer sets the limit after each collection.
type pacer struct {
	floorBytes uint64
	samples    []metrics.Sample
	adjusted   func(limitBytes int64) // tests
	stopped    atomic.Bool            // tests: no more adjustments
}

// Start turns off the forced collections and paces the collector by a
// memory limit set after each collection (Limit with floorBytes), and
// reports whether it did: not when GOGC or GOMEMLIMIT is set.
func Start(floorBytes uint64) bool {
	return start(floorBytes, nil) != nil
}

// start is Start, with adjusted (when not nil) called with each limit
// set; it returns the pacer, or nil.
func start(floorBytes uint64, adjusted func(limitBytes int64)) *pacer {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return nil
	}
	p := &pacer{floorBytes: floorBytes, adjusted: adjusted, samples: []metrics.Sample{
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}}
	p.adjust() // before GOGC goes off: the limit is there when it does
	debug.SetGCPercent(-1)
	p.arm()
	return p
}

// adjust sets the memory limit from the runtime's figures now.
func (p *pacer) adjust() {
	metrics.Read(p.samples)
	v := func(i int) uint64 {
		if p.samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return p.samples[i].Value.Uint64()
	}
	// The limit counts all the memory mapped but what was released; the
	// heap's share of it is what the limit paces.
	overhead := v(0)
	for i := 1; i <= 4; i++ {
		overhead -= min(v(i), overhead)
	}
	limit := Limit(overhead, v(5), p.floorBytes)
	debug.SetMemoryLimit(limit)
	if p.adjusted != nil {
		p.adjusted(limit)
	}
}

// sentinel is the object whose finalizer runs after each collection.
// Larger than the tiny allocator's 16-byte blocks: small objects without
// pointers share those, and their finalizers may never run.
type sentinel struct{ _ [32]byte }

// arm has adjust run after the next collection, and arm again.
func (p *pacer) arm() {
	runtime.SetFinalizer(new(sentinel), func(*sentinel) {
		if p.stopped.Load() {
			return
		}
		p.adjust()
		p.arm()
	})
}
