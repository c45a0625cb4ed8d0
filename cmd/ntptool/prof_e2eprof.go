//go:build e2eprof

package main

import (
	"os"
	"runtime/pprof"
	"strconv"
	"time"
)

// A diagnostic build (-tags e2eprof), never shipped: `ntptool run` writes
// a CPU profile of its first $NTPTOOL_CPUPROFILE_SECONDS (default 12) to
// $NTPTOOL_CPUPROFILE.
func init() {
	path := os.Getenv("NTPTOOL_CPUPROFILE")
	if path == "" || len(os.Args) < 2 || os.Args[1] != "run" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		return
	}
	if pprof.StartCPUProfile(f) != nil {
		return
	}
	d := 12 * time.Second
	if n, err := strconv.Atoi(os.Getenv("NTPTOOL_CPUPROFILE_SECONDS")); err == nil && n > 0 {
		d = time.Duration(n) * time.Second
	}
	time.AfterFunc(d, func() { pprof.StopCPUProfile(); f.Close() })
}
