//go:build e2eprof

package main

import (
	"os"
	"runtime/pprof"
	"time"
)

// A diagnostic build (-tags e2eprof), never shipped: the process writes a
// CPU profile of its first 12 s to $NTPTOOL_CPUPROFILE.
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
	time.AfterFunc(12*time.Second, func() { pprof.StopCPUProfile(); f.Close() })
}
