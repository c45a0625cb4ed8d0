package main

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/config"
	"github.com/ntptool/ntptool/daemon"
	"github.com/ntptool/ntptool/internal/exepages"
	"github.com/ntptool/ntptool/internal/gcpace"
)

type runFlags struct {
	config         string
	noClockControl bool
	logFormat      string
	logLevel       string
}

func newRunCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run [--config FILE] [--no-clock-control]",
		Short: "Run the daemon: discipline this host's clock from NTP servers (replaces ntpd/chronyd)",
		Long: `Run the synchronisation daemon in the foreground (systemd, OpenRC and
containers run it so): poll the configured servers and pools, reject
falsetickers, discipline the clock through adjtimex (frequency and smooth
slews; a step only as [step] allows, after the pre-step hooks that keep DHCP
leases alive), keep the drift file, serve NTP to the LAN when [server] enabled
= true, and answer ntptool status, sources and wait-sync on the control
socket.

The configuration (--config, default /etc/ntptool.toml) is ntptool's TOML, or
an existing /etc/ntp.conf, /etc/ntpsec/ntp.conf or /etc/chrony/chrony.conf
unchanged: the format is told by its content and the file imported at load
(what cannot be mapped is logged with its line; ntptool config import shows
the TOML). Every key: docs/config.md.

--no-clock-control computes everything and changes nothing (like chronyd -x):
the clock is virtual, the status shows what the daemon would do. Without it
the daemon needs CAP_SYS_TIME (root, or the unit's capabilities).

Signals: SIGTERM and SIGINT save the drift file and exit 0; SIGHUP reloads
the configuration (sources added and removed, the learned frequency kept; a
configuration that does not load is reported and the old one stays).

Exit status: 0 stopped by a signal, 1 a failure (the reason on stderr),
2 usage or configuration error.`,
		Example: `  ntptool run                                   # /etc/ntptool.toml
  ntptool run --config /etc/chrony/chrony.conf  # replace chronyd with its own file
  ntptool run --config test.toml --no-clock-control --log-level debug`,
		Args: argsExactly(0, "arguments (flags only)"),
		RunE: func(cmd *cobra.Command, _ []string) error { return runDaemon(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.config, "config", "c", daemon.DefaultConfigPath, "configuration file: ntptool TOML, ntp.conf or chrony.conf")
	fl.BoolVar(&f.noClockControl, "no-clock-control", false, "never change the clock: compute and report only (like chronyd -x)")
	fl.StringVar(&f.logFormat, "log-format", "", "text or json (default: the configuration's [log] format)")
	fl.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (default: the configuration's [log] level)")
	return cmd
}

func runDaemon(cmd *cobra.Command, f runFlags) error {
	// The log settings come from the file, which Run loads; read them
	// first (a file that does not load is Run's to report).
	level, format := "info", "text"
	if cfg, _, err := config.LoadAny(f.config); err == nil {
		level, format = cfg.Log.Level, cfg.Log.Format
		oneProcessor(cfg.Server.Enabled)
	}
	if f.logLevel != "" {
		level = f.logLevel
	}
	if f.logFormat != "" {
		format = f.logFormat
	}
	handler, err := logHandler(cmd.ErrOrStderr(), format, level)
	if err != nil {
		return err
	}
	reload := make(chan struct{}, 1)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	log := slog.New(handler)
	err = daemon.Run(cmd.Context(), daemon.RunOptions{
		ConfigPath: f.config, NoClockControl: f.noClockControl, Logger: log, Reload: reload,
		// The same binary, whatever its path; started before the drop.
		HookHelper: []string{"/proc/self/exe", hookHelperCmd, "--log-format", format, "--log-level", level},
		Started:    func() { settle(log) },
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, daemon.ErrConfig):
		return &exitError{code: exitUsage, err: err}
	case errors.Is(err, clock.ErrPermission):
		return &exitError{code: exitFailure, err: err}
	}
	return err
}

// oneProcessor runs the daemon on one P unless it serves NTP (the
// server's workers use every core) or GOMAXPROCS is set. The daemon's
// work is one event loop: with a single P the runtime neither spins nor
// steals after each event, and sysmon sleeps as soon as the loop parks,
// which halves the wake-ups of an idle daemon (docs/footprint.md).
func oneProcessor(serving bool) {
	if !serving && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}

// idleHeapFloorBytes is the heap growth between collections the daemon
// allows at least, half the runtime's own minimum: the idle daemon
// allocates a few KiB per poll round, and its resident set counts the
// heap it keeps. At the default polling that is a collection every few
// hours. With 1 MiB, each collection's garbage was often more than the
// limit's slack, and the scavenger, returning it a little at a time, woke
// the process dozens of times.
const idleHeapFloorBytes = 2 << 20

// settle readies the process for a long idle life once the daemon's loop
// runs (docs/footprint.md): start-up's garbage is collected and its pages
// returned to the system, the pages of the binary that only start-up used
// leave the resident set, and the collector is paced by the heap's growth
// instead of forced every two minutes.
func settle(log *slog.Logger) {
	// A collection, and its free pages go back: the memory limit the
	// pacer sets would otherwise count them, and the scavenger return
	// them a little at a time, waking the process each time.
	debug.FreeOSMemory()
	if kib, err := exepages.Release(); err != nil {
		log.Debug("start-up pages kept", "err", err)
	} else {
		log.Debug("start-up pages released", "kib", kib)
	}
	if !gcpace.Start(idleHeapFloorBytes) {
		log.Debug("GOGC or GOMEMLIMIT set: the collector as they say")
	}
}

// logHandler is the daemon's log handler: format "text" or "json" at
// level; text without timestamps when w is no terminal (the service
// manager's journal stamps the time itself).
func logHandler(w io.Writer, format, level string) (slog.Handler, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.NewJSONHandler(w, opts), nil
	case "text":
	default:
		return nil, usageError("--log-format %q: want text or json", format)
	}
	if !isTerminal(w) {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		}
	}
	return slog.NewTextHandler(w, opts), nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
