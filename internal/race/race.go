//go:build !race

// Package race reports whether the race detector is built in, so that the
// heavy simulation tests can run few seeds under it (it finds nothing in
// the simulator's single-goroutine runs and makes them ten times slower)
// and their full count without it: make test runs both.
package race

// Enabled is true when the race detector is built in.
const Enabled = false
