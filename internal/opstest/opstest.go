// Package opstest holds what the operations tests (metrics, audit
// journal, systemd notifications, privilege drop: issue 11) share: a
// loopback NTP server whose clock runs at an offset, the daemon started
// as the tests must start it on a host (--no-clock-control, under setpriv
// without CAP_SYS_TIME), a NOTIFY_SOCKET listener, and /proc status. Its
// own tests run the ntptool binary against them.
package opstest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ntptool/ntptool/ntpserve"
	"github.com/ntptool/ntptool/ntpwire"
)

// Server is a loopback NTP server (stratum 1) that reads the host's
// clock plus an offset, for both its receive and transmit timestamps, so
// that a client sees a clock that far ahead.
type Server struct {
	// Addr is its address, 127.0.0.1:port.
	Addr *net.UDPAddr
	conn *net.UDPConn

	offset    atomic.Int64 // ns
	answering atomic.Bool
	replies   atomic.Int64
}

// NewServer starts a server whose clock is offset ahead of the host's,
// answering at once if answering; it stops when the test ends.
func NewServer(t testing.TB, offset time.Duration, answering bool) *Server {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: conn.LocalAddr().(*net.UDPAddr), conn: conn}
	s.offset.Store(int64(offset))
	s.answering.Store(answering)
	done := make(chan struct{})
	go s.serve(done)
	t.Cleanup(func() { conn.Close(); <-done })
	return s
}

// SetAnswering starts or stops the replies.
func (s *Server) SetAnswering(on bool) { s.answering.Store(on) }

// Replies counts the replies sent.
func (s *Server) Replies() int64 { return s.replies.Load() }

func (s *Server) now() time.Time { return time.Now().Add(time.Duration(s.offset.Load())) }

func (s *Server) serve(done chan struct{}) {
	defer close(done)
	st := ntpserve.UpstreamState(ntpserve.Upstream{LocalStratum: 1, RefTime: s.now()})
	buf, out := make([]byte, 512), make([]byte, ntpserve.HeaderLen)
	for {
		n, from, err := s.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		rx := ntpwire.FromTime(s.now())
		req, verdict := ntpserve.ParseRequest(buf[:n])
		if verdict != ntpserve.Reply || !s.answering.Load() {
			continue
		}
		n = ntpserve.BuildReply(out, req, rx, ntpwire.FromTime(s.now()), &st)
		if _, err := s.conn.WriteToUDP(out[:n], from); err == nil {
			s.replies.Add(1)
		}
	}
}

// Config is a daemon configuration for the tests: one iburst source at
// srv polled every second, the control socket, journal and drift file in
// dir, no DHCP renewal, and extra TOML after it.
func Config(t testing.TB, dir string, srv *Server, extra string) string {
	t.Helper()
	path := filepath.Join(dir, "ntptool.toml")
	text := fmt.Sprintf(`driftfile = %q
[[source]]
server = "127.0.0.1"
port = %d
iburst = true
minpoll = 0
maxpoll = 0
[control]
socket = %q
[audit]
journal = %q
[hooks]
dhcp_renew = "off"
%s
`, filepath.Join(dir, "state", "drift"), srv.Addr.Port, filepath.Join(dir, "run", "control.sock"), filepath.Join(dir, "log", "audit.jsonl"), extra)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Daemon is a running ntptool run.
type Daemon struct {
	Cmd  *exec.Cmd
	Log  string // its stderr, a file
	done chan struct{}
	err  error
}

// StartDaemon starts bin run --config cfg --no-clock-control under
// setpriv with CAP_SYS_TIME outside its bounding set (the only way the
// daemon may run on a host), with env added to the environment; it is
// killed when the test ends if it still runs.
func StartDaemon(t testing.TB, bin, cfg string, env ...string) *Daemon {
	t.Helper()
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatal("setpriv (util-linux) is needed to run the daemon without CAP_SYS_TIME")
	}
	log := filepath.Join(t.TempDir(), "daemon.log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("setpriv", "--bounding-set", "-sys_time", "--", bin, "run", "--config", cfg, "--no-clock-control", "--log-level", "debug")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatal(err)
	}
	d := &Daemon{Cmd: cmd, Log: log, done: make(chan struct{})}
	go func() { d.err = cmd.Wait(); f.Close(); close(d.done) }()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			out, _ := os.ReadFile(log)
			t.Logf("daemon log:\n%s", out)
		}
	})
	return d
}

// Pid is the daemon's process id (setpriv execs it: the same process).
func (d *Daemon) Pid() int { return d.Cmd.Process.Pid }

// Signal sends sig to the daemon.
func (d *Daemon) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := d.Cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// Stop sends SIGTERM and waits (up to timeout) for the exit status.
func (d *Daemon) Stop(t testing.TB, timeout time.Duration) error {
	t.Helper()
	d.Signal(t, syscall.SIGTERM)
	select {
	case <-d.done:
		return d.err
	case <-time.After(timeout):
		t.Fatalf("the daemon did not stop within %v of SIGTERM", timeout)
		return nil
	}
}

// Exited is closed when the daemon has exited.
func (d *Daemon) Exited() <-chan struct{} { return d.done }

// Until polls cond every 50 ms until it holds, the daemon exits, or
// timeout passes (a failure, with what).
func (d *Daemon) Until(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		select {
		case <-d.done:
			t.Fatalf("%s: the daemon exited (%v)", what, d.err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
	}
}

// Notification is one sd_notify datagram.
type Notification struct {
	// At is when it arrived (monotonic, since the listener started).
	At time.Duration
	// Fields are its assignments, in order ("READY=1", "STATUS=...").
	Fields []string
}

// Has reports whether the notification carries field (e.g. "READY=1"),
// or a field with that prefix when it ends with "=".
func (n Notification) Has(field string) bool {
	for _, f := range n.Fields {
		if f == field || strings.HasSuffix(field, "=") && strings.HasPrefix(f, field) {
			return true
		}
	}
	return false
}

// Get returns the value of key ("STATUS"), "" if absent.
func (n Notification) Get(key string) string {
	for _, f := range n.Fields {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// NotifySocket listens as systemd does for sd_notify(3) datagrams.
type NotifySocket struct {
	Path  string
	start time.Time
	mu    sync.Mutex
	got   []Notification
	conn  *net.UnixConn
}

// NewNotifySocket listens on a datagram socket in dir.
func NewNotifySocket(t testing.TB, dir string) *NotifySocket {
	t.Helper()
	path := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &NotifySocket{Path: path, start: time.Now(), conn: conn}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			msg := Notification{At: time.Since(n.start), Fields: strings.Split(strings.TrimRight(string(buf[:k]), "\n"), "\n")}
			n.mu.Lock()
			n.got = append(n.got, msg)
			n.mu.Unlock()
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return n
}

// Got returns the notifications so far.
func (n *NotifySocket) Got() []Notification {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Notification(nil), n.got...)
}

// ProcStatus returns the fields of /proc/PID/status, values with their
// whitespace collapsed.
func ProcStatus(pid int) (map[string]string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok {
			out[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return out, sc.Err()
}

// Children returns the pids of pid's child processes (of all its
// threads: Go forks from any of them).
func Children(pid int) ([]int, error) {
	files, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	if err != nil {
		return nil, err
	}
	var out []int
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			continue // the thread ended
		}
		for _, f := range strings.Fields(string(data)) {
			var n int
			if _, err := fmt.Sscan(f, &n); err == nil {
				out = append(out, n)
			}
		}
	}
	return out, nil
}
