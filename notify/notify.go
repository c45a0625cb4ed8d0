// Package notify tells systemd about the daemon (sd_notify(3), for
// Type=notify units): READY=1 once the clock has been updated (or a
// start-up timeout passed), STATUS= lines with the offset and the source,
// RELOADING=1/READY=1 around a SIGHUP reload, STOPPING=1, and WATCHDOG=1
// pings at half of WatchdogSec. It wraps github.com/coreos/go-systemd's
// daemon package; without NOTIFY_SOCKET (not under systemd, or OpenRC)
// every call does nothing and returns nil.
//
// The package reads no clock: the daemon passes the watchdog's ticks in
// (time.NewTicker(n.WatchdogInterval()).C), so tests drive it directly.
package notify

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notifier sends state changes to systemd. It is not safe for concurrent
// use: the daemon's loop owns it.
type Notifier struct {
	enabled  bool
	watchdog time.Duration // WatchdogSec; 0 if off
	ready    bool          // READY=1 was sent
}

// New reads the environment systemd sets: NOTIFY_SOCKET, and WATCHDOG_USEC
// with WATCHDOG_PID. The watchdog variables are removed from the
// environment (they concern this process only); NOTIFY_SOCKET stays,
// because go-systemd reads it on every call, so whoever starts other
// programs (hooks) should leave it out of their environment.
func New() (*Notifier, error) {
	wd, err := daemon.SdWatchdogEnabled(true)
	if err != nil {
		return nil, fmt.Errorf("systemd watchdog: %w", err)
	}
	return &Notifier{enabled: os.Getenv("NOTIFY_SOCKET") != "", watchdog: wd}, nil
}

// Enabled reports whether systemd listens (NOTIFY_SOCKET is set).
func (n *Notifier) Enabled() bool { return n.enabled }

// WatchdogInterval is how often to ping the watchdog: half of WatchdogSec,
// as sd_watchdog_enabled(3) advises; 0 when the watchdog is off.
func (n *Notifier) WatchdogInterval() time.Duration { return n.watchdog / 2 }

// send sends one message of newline-separated assignments.
func (n *Notifier) send(lines ...string) error {
	if !n.enabled {
		return nil
	}
	if _, err := daemon.SdNotify(false, strings.Join(lines, "\n")); err != nil {
		return fmt.Errorf("sd_notify %s: %w", lines[0], err)
	}
	return nil
}

// Ready says start-up is finished, with a status line.
func (n *Notifier) Ready(status string) error {
	n.ready = true
	return n.send(daemon.SdNotifyReady, "STATUS="+oneLine(status))
}

// Update is what the daemon calls after each clock update, and once when
// its start-up timeout passes without one: the first call sends READY=1
// with the status, later ones the status alone.
func (n *Notifier) Update(status string) error {
	if !n.ready {
		return n.Ready(status)
	}
	return n.Status(status)
}

// Status sets the status line that systemctl status shows.
func (n *Notifier) Status(status string) error { return n.send("STATUS=" + oneLine(status)) }

// Reloading says a reload started; monotonicUsec is CLOCK_MONOTONIC in
// microseconds (systemd 253 and later want it with RELOADING=1). Call
// Ready when the reload is done.
func (n *Notifier) Reloading(monotonicUsec uint64) error {
	return n.send(daemon.SdNotifyReloading, fmt.Sprintf("MONOTONIC_USEC=%d", monotonicUsec))
}

// Stopping says the daemon is shutting down.
func (n *Notifier) Stopping() error { return n.send(daemon.SdNotifyStopping) }

// Watchdog pings the watchdog.
func (n *Notifier) Watchdog() error {
	if n.watchdog == 0 {
		return nil
	}
	return n.send(daemon.SdNotifyWatchdog)
}

// RunWatchdog pings the watchdog on every tick until ctx ends, returning
// the first error. The daemon's loop should rather ping from the loop
// itself (so a stuck loop stops the pings, which is the watchdog's point);
// RunWatchdog is for a loop that cannot.
func (n *Notifier) RunWatchdog(ctx context.Context, tick <-chan time.Time) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			if err := n.Watchdog(); err != nil {
				return err
			}
		}
	}
}

// FormatStatus is the STATUS= text for the daemon's state, e.g.
// "synchronised to a.example (192.0.2.1:123), offset +0.000123 s".
func FormatStatus(synced bool, offsetSeconds float64, source string) string {
	if !synced {
		if source == "" {
			return "not synchronised: no usable source yet"
		}
		return fmt.Sprintf("not synchronised; best source %s, offset %+.6f s", source, offsetSeconds)
	}
	return fmt.Sprintf("synchronised to %s, offset %+.6f s", source, offsetSeconds)
}

// oneLine keeps a status to one line: a newline would start another
// assignment in the message.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}
