package peers

import (
	"fmt"
	"os"
)

// TB is the part of testing.TB the helpers need. Tests pass their
// *testing.T; benchmark programs outside `go test` pass a *Runner.
type TB interface {
	Helper()
	Cleanup(func())
	TempDir() string
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
	Skipf(format string, args ...any)
	Logf(format string, args ...any)
	Failed() bool
}

// Runner lets a benchmark program use the helpers: cleanups run on Close
// (last registered first), and a fatal error runs them before exiting.
type Runner struct {
	cleanups []func()
	failed   bool
}

// Helper does nothing; it exists to satisfy TB.
func (r *Runner) Helper() {}

// Cleanup registers f to run on Close.
func (r *Runner) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

// TempDir makes a directory removed on Close.
func (r *Runner) TempDir() string {
	dir, err := os.MkdirTemp("", "ntptool-bench-")
	if err != nil {
		r.Fatal(err)
	}
	r.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Fatal prints args, cleans up and exits with status 1.
func (r *Runner) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }

// Fatalf prints the message, cleans up and exits with status 1.
func (r *Runner) Fatalf(format string, args ...any) {
	r.failed = true
	fmt.Fprintf(os.Stderr, "fatal: "+format+"\n", args...)
	r.Close()
	os.Exit(1)
}

// Errorf prints the message and marks the run failed.
func (r *Runner) Errorf(format string, args ...any) {
	r.failed = true
	fmt.Fprintf(os.Stderr, "error: "+format+"\n", args...)
}

// Skipf is fatal outside tests: a benchmark needs its peers.
func (r *Runner) Skipf(format string, args ...any) { r.Fatalf(format, args...) }

// Logf prints the message to standard error.
func (r *Runner) Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

// Failed reports whether Errorf or Fatalf was called.
func (r *Runner) Failed() bool { return r.failed }

// Close runs the cleanups, last registered first.
func (r *Runner) Close() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	r.cleanups = nil
}
