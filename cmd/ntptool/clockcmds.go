package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ntptool/ntptool/audit"
	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/config"
	"github.com/ntptool/ntptool/control"
	"github.com/ntptool/ntptool/daemon"
	"github.com/ntptool/ntptool/e2e/guard"
	"github.com/ntptool/ntptool/oneshot"
	"github.com/ntptool/ntptool/stephook"
)

// exitStepped is the exit code of step and sync when the clock was
// stepped but a post-step hook or renewal failed.
const exitStepped = 3

// hostClock is what step and sync take from the host. newRootCmd gives
// them the real one; the tests build the commands with a simulated kernel
// (the real step is proven in the e2e guest VM only).
type hostClock struct {
	// kernel returns the kernel clock to change.
	kernel func() (clock.Kernel, error)
	// readOnly is the kernel clock for reading only (dry runs, no clock
	// control).
	readOnly clock.Kernel
	// canSetTime reports whether this process may set the clock.
	canSetTime func() bool
	// daemonRunning reports whether a daemon answers on the control
	// socket at path.
	daemonRunning func(ctx context.Context, path string) bool
	// wait is oneshot.Options.Wait; nil: a timer.
	wait func(ctx context.Context, d time.Duration) error
}

// realHostClock is this host's kernel clock.
func realHostClock() hostClock {
	return hostClock{
		kernel: func() (clock.Kernel, error) {
			// A test binary changes a clock only inside the e2e guest VM:
			// a test that reached here on the host (a forgotten --dry-run)
			// fails instead of stepping the machine's clock.
			if testing.Testing() {
				if err := guard.Check(guard.OS{}); err != nil {
					return nil, fmt.Errorf("a test binary may change the clock only in the e2e guest VM: %w", err)
				}
			}
			return clock.Linux{}, nil
		},
		readOnly:   clock.HostReadOnly(),
		canSetTime: hasCapSysTime,
		daemonRunning: func(ctx context.Context, path string) bool {
			if path == "" {
				return false
			}
			_, err := control.Query(ctx, path, "status")
			return err == nil
		},
	}
}

// hasCapSysTime reports whether this process holds CAP_SYS_TIME in its
// effective set (capget; an unreadable set is left to the kernel to judge).
func hasCapSysTime() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return true
	}
	return data[unix.CAP_SYS_TIME/32].Effective&(1<<(unix.CAP_SYS_TIME%32)) != 0
}

// loadClockConfig loads --config for step and sync: ntptool TOML, or an
// ntp.conf or chrony.conf (imported, as ntptool run does). Without
// --config it is /etc/ntptool.toml when that exists (the daemon's hooks),
// else the built-in defaults unless the caller needs the file (sync: the
// servers). The name says which was used.
func loadClockConfig(path string, needFile bool) (cfg *config.Config, name string, err error) {
	if path == "" {
		path = daemon.DefaultConfigPath
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && !needFile {
			d := config.Default()
			return &d, "built-in defaults", nil
		}
	}
	cfg, _, err = config.LoadAny(path)
	if err != nil {
		return nil, path, &exitError{code: exitUsage, err: err}
	}
	return cfg, path, nil
}

// openJournal opens [audit] journal for a change made outside the daemon.
// A journal the running daemon holds (it has the file locked) is left to
// it: the daemon records the change as an external one (the note says
// so). Any other failure is logged and the change goes on: it is the
// kernel's to refuse.
func openJournal(cfg *config.Config, log *slog.Logger) (j *audit.Journal, note string) {
	if cfg.Audit.Journal == "" {
		return nil, ""
	}
	j, err := audit.Open(cfg.Audit.Journal, audit.Options{})
	switch {
	case err == nil:
		return j, ""
	case strings.Contains(err.Error(), "in use by another process"):
		return nil, fmt.Sprintf("the audit journal %s is held by the running daemon: it records this change as an external one", cfg.Audit.Journal)
	}
	log.Warn("audit journal not written", "path", cfg.Audit.Journal, "err", err)
	return nil, ""
}

// journalOf makes a nil *audit.Journal a nil oneshot.Journal.
func journalOf(j *audit.Journal) oneshot.Journal {
	if j == nil {
		return nil
	}
	return j
}

// cmdLogger logs to stderr: warnings and errors, or everything with -v.
func cmdLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// writeHooks prints one event's hook runs as a table under a title.
func writeHooks(w io.Writer, title string, rep stephook.Report) {
	fmt.Fprintln(w, title)
	if len(rep.Results) == 0 {
		fmt.Fprintln(w, "  (none)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  HOOK\tNAME\tINTERFACES\tRESULT\tTIME\tACTION")
	for _, r := range rep.Results {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%.3fs\t%s\n", r.Hook, r.Name, joinOr(r.Interfaces), r.Outcome, r.Duration.Seconds(), r.Action)
	}
	tw.Flush()
	for _, r := range rep.Results {
		if r.Err != nil && r.Outcome != stephook.OK {
			fmt.Fprintf(w, "  # %s %s: %v\n", r.Hook, r.Name, r.Err)
		}
	}
	if rep.Verdict == stephook.Abort {
		fmt.Fprintf(w, "  verdict: abort (%s)\n", rep.Reason)
	}
}

// daemonNote is what a manual change means to a running daemon.
const daemonNote = `note: ntptool run is running: its watcher sees this step as one made by
someone else (TFD_TIMER_CANCEL_ON_SET), measures it, re-bases its estimates
and runs the external-step hooks; then it corrects the clock from its
sources again, as its [step] policy allows. Stop it to keep a time set by hand.`

// clockError maps the errors of oneshot.Step and Sync to exit codes and
// the user's message; dryFlag is the command's flag that changes nothing.
func clockError(what, dryFlag string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, oneshot.ErrRequest):
		return &exitError{code: exitUsage, err: err}
	case errors.Is(err, clock.ErrPermission):
		return &exitError{code: exitFailure, err: fmt.Errorf("%s: need CAP_SYS_TIME to change the clock (run as root, or grant the capability); %s shows what would be done", what, dryFlag)}
	case errors.Is(err, oneshot.ErrPostStep):
		return &exitError{code: exitStepped, err: err}
	}
	return &exitError{code: exitFailure, err: fmt.Errorf("%s: %w", what, err)}
}
