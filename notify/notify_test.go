package notify

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// listen makes a test NOTIFY_SOCKET and returns a function that reads the
// next message (with a deadline, so a missing message fails, not hangs).
func listen(t *testing.T) func() string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return func() string {
		t.Helper()
		buf := make([]byte, 4096)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("read notify socket: %v", err)
		}
		return string(buf[:n])
	}
}

func TestMessages(t *testing.T) {
	next := listen(t)
	t.Setenv("WATCHDOG_USEC", "3000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	n, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if !n.Enabled() {
		t.Fatal("not enabled with NOTIFY_SOCKET set")
	}
	if got := n.WatchdogInterval(); got != 1500*time.Millisecond {
		t.Errorf("WatchdogInterval = %v, want 1.5s (half of WatchdogSec)", got)
	}
	if os.Getenv("WATCHDOG_USEC") != "" {
		t.Error("WATCHDOG_USEC left in the environment")
	}
	for _, tt := range []struct {
		name string
		send func() error
		want string
	}{
		{"ready after the first update", func() error { return n.Ready(FormatStatus(true, 0.000123, "a.example (192.0.2.1:123)")) },
			"READY=1\nSTATUS=synchronised to a.example (192.0.2.1:123), offset +0.000123 s"},
		{"status", func() error { return n.Status("line one\nWATCHDOG=1") }, "STATUS=line one WATCHDOG=1"},
		{"status unsynchronised", func() error { return n.Status(FormatStatus(false, 0, "")) }, "STATUS=not synchronised: no usable source yet"},
		{"reloading", func() error { return n.Reloading(123456789) }, "RELOADING=1\nMONOTONIC_USEC=123456789"},
		{"watchdog", n.Watchdog, "WATCHDOG=1"},
		{"stopping", n.Stopping, "STOPPING=1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.send(); err != nil {
				t.Fatal(err)
			}
			if got := next(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRunWatchdog(t *testing.T) {
	next := listen(t)
	t.Setenv("WATCHDOG_USEC", "2000000")
	n, err := New()
	if err != nil {
		t.Fatal(err)
	}
	tick := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.RunWatchdog(ctx, tick) }()
	for i := range 3 {
		tick <- time.Time{}
		if got := next(); got != "WATCHDOG=1" {
			t.Errorf("ping %d: %q", i, got)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("RunWatchdog = %v", err)
	}
}

func TestDisabled(t *testing.T) {
	for _, tt := range []struct {
		name, socket, usec, pid string
		enabled                 bool
	}{
		{"not under systemd", "", "", "", false},
		{"watchdog for another process", "/nonexistent/notify.sock", "2000000", "1", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("NOTIFY_SOCKET", tt.socket)
			t.Setenv("WATCHDOG_USEC", tt.usec)
			t.Setenv("WATCHDOG_PID", tt.pid)
			n, err := New()
			if err != nil {
				t.Fatal(err)
			}
			if n.Enabled() != tt.enabled || n.WatchdogInterval() != 0 {
				t.Errorf("Enabled %v, WatchdogInterval %v; want %v and 0", n.Enabled(), n.WatchdogInterval(), tt.enabled)
			}
			if err := n.Watchdog(); err != nil {
				t.Errorf("Watchdog with the watchdog off = %v, want nil (nothing sent)", err)
			}
			if !tt.enabled {
				if err := n.Ready("x"); err != nil {
					t.Errorf("Ready without systemd = %v, want nil", err)
				}
			}
		})
	}
}

func TestBadWatchdogEnv(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "soon")
	if _, err := New(); err == nil {
		t.Error("New with WATCHDOG_USEC=soon succeeded")
	}
}

// TestUpdate: READY=1 comes with the first update only; STATUS lines
// follow.
func TestUpdate(t *testing.T) {
	next := listen(t)
	n, err := New()
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{
		"READY=1\nSTATUS=synchronised to a (192.0.2.1:123), offset +0.001000 s",
		"STATUS=synchronised to a (192.0.2.1:123), offset +0.000100 s",
		"STATUS=synchronised to a (192.0.2.1:123), offset -0.000010 s",
	} {
		offset := []float64{0.001, 0.0001, -0.00001}[i]
		if err := n.Update(FormatStatus(true, offset, "a (192.0.2.1:123)")); err != nil {
			t.Fatal(err)
		}
		if got := next(); got != want {
			t.Errorf("update %d: got %q, want %q", i, got, want)
		}
	}
}
