//go:build e2eprof

package main

import (
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"time"
)

// A diagnostic build (-tags e2eprof), never shipped: `ntptool run` writes
// a CPU profile of its first $NTPTOOL_CPUPROFILE_SECONDS (default 12) to
// $NTPTOOL_CPUPROFILE, and a profile of every allocation in that time
// to $NTPTOOL_MEMPROFILE.
func init() {
	cpu, mem := os.Getenv("NTPTOOL_CPUPROFILE"), os.Getenv("NTPTOOL_MEMPROFILE")
	if cpu == "" && mem == "" || len(os.Args) < 2 || os.Args[1] != "run" {
		return
	}
	d := 12 * time.Second
	if n, err := strconv.Atoi(os.Getenv("NTPTOOL_CPUPROFILE_SECONDS")); err == nil && n > 0 {
		d = time.Duration(n) * time.Second
	}
	if mem != "" {
		runtime.MemProfileRate = 1
		time.AfterFunc(d, func() {
			runtime.GC() // the profile is as of the last collection
			if f, err := os.Create(mem); err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		})
	}
	if cpu == "" {
		return
	}
	f, err := os.Create(cpu)
	if err != nil {
		return
	}
	if pprof.StartCPUProfile(f) != nil {
		return
	}
	time.AfterFunc(d, func() { pprof.StopCPUProfile(); f.Close() })
}
