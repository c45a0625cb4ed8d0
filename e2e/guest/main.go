// Command guest is the init (PID 1) of the e2e test VM, and a few guarded
// helpers. As PID 1 it mounts the pseudo file systems, proves it is in the
// guest, starts itself again as the scenario runner and reaps every
// process (as a real init does) until the runner exits, then powers the
// VM off. The runner loads the NIC modules, configures the guest's
// user-mode network (10.0.2.15/24, no default route: the only peer is the
// host's 127.0.0.1 as 10.0.2.2), runs the scenario named by the Spec in
// /e2e/spec.json and writes the framed report on the console.
//
// Changing a clock is what the scenarios are for, and it is allowed only
// here: every function that changes a clock, and every program started with
// the right to, first proves with package guard that this is the e2e guest.
//
// Helpers (run by scenario scripts inside the guest):
//
//	/init step SECONDS     clock_settime(CLOCK_REALTIME, now + SECONDS)
//	/init freq PPM         adjtimex(ADJ_FREQUENCY, PPM)
//
// On any other machine they refuse and exit 2 without touching the clock.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/ntptool/ntptool/e2e/guard"
)

func main() {
	switch {
	case os.Getpid() == 1:
		pid1()
	case os.Getenv(runnerEnv) == "1":
		runScenario()
	default:
		os.Exit(helper(os.Args[1:]))
	}
}

// helper runs one guarded helper command and returns the exit code.
func helper(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: init step SECONDS | init freq PPM (inside the e2e guest only)")
		return 2
	}
	v, err := strconv.ParseFloat(args[1], 64)
	if err != nil {
		fmt.Fprintf(os.Stderr, "init %s: %v\n", args[0], err)
		return 2
	}
	c := newClock(guard.OS{}, unixKernel{})
	switch args[0] {
	case "step":
		err = c.Step(time.Duration(v * float64(time.Second)))
	case "freq":
		err = c.SetFrequency(v)
	default:
		fmt.Fprintf(os.Stderr, "init: unknown helper %q\n", args[0])
		return 2
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "init %s: %v\n", args[0], err)
		return 2
	}
	return 0
}
