// Package peers starts real third-party NTP implementations (chronyd, NTPsec
// ntpd, ntpdig) for interoperability tests and benchmarks, on loopback or in
// network namespaces the test creates.
//
// The binaries come from Debian packages unpacked by scripts/peers.sh into a
// private cache (never installed, so nothing starts a clock-disciplining
// daemon). Every peer runs with CAP_SYS_TIME removed from its bounding set,
// and chronyd always with -x, so no peer can change this machine's clock.
// Every process is killed by PID and every namespace deleted on cleanup.
package peers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// NoCap returns the command line that runs argv without CAP_SYS_TIME in
// its bounding set (setpriv), so that it cannot change the clock even by
// mistake. Every third-party program the tests and benchmarks start goes
// through it.
func NoCap(argv ...string) []string {
	return append([]string{"setpriv", "--bounding-set", "-sys_time", "--"}, argv...)
}

// requireEnv is set (to 1) in CI: missing peers are then a failure, not a skip.
const requireEnv = "NTPTOOL_REQUIRE_PEERS"

// skipOrFail skips the test, or fails it when the environment requires peers.
func skipOrFail(t TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(requireEnv) == "1" {
		t.Fatalf(format+" (%s=1: the interop tests must run)", append(args, requireEnv)...)
	}
	t.Skipf(format+" (run scripts/peers.sh, or make test)", args...)
}

// Root returns the directory where scripts/peers.sh unpacked the peers
// ($NTPTOOL_PEERS, else <repo>/.cache/peers/root).
func Root(t TB) string {
	t.Helper()
	root := os.Getenv("NTPTOOL_PEERS")
	if root == "" {
		root = filepath.Join(repoDir(t), ".cache", "peers", "root")
	}
	if _, err := os.Stat(filepath.Join(root, "usr/sbin/chronyd")); err != nil {
		skipOrFail(t, "real peers not found in %s", root)
	}
	return root
}

// RequireNetns skips (or fails, in CI) unless network namespaces can be made.
func RequireNetns(t TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		skipOrFail(t, "ip (iproute2) not installed")
	}
}

// repoDir finds the module root from the test's working directory.
func repoDir(t TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// Netns is a network namespace made for one test, with only loopback up.
type Netns struct {
	Name string
}

// NewNetns creates a namespace with loopback up and deletes it on cleanup.
func NewNetns(t TB) *Netns {
	t.Helper()
	RequireNetns(t)
	name := fmt.Sprintf("ntpt-%d-%d", os.Getpid(), nsSeq.next())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up in %s: %v: %s", name, err, out)
	}
	return &Netns{Name: name}
}

type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) next() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return c.n
}

var nsSeq counter

// Command returns a command that runs inside the namespace; a nil namespace
// runs it in the caller's.
func (n *Netns) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	if n == nil {
		return exec.CommandContext(ctx, name, args...)
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Start starts cmd and kills it (by PID) on cleanup. Output goes to a log
// file whose content is reported if the test fails.
func Start(t TB, cmd *exec.Cmd, name string) *exec.Cmd {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", name, out)
		}
	})
	return cmd
}

// FreeUDPPort returns a UDP port on 127.0.0.1 that was free a moment ago.
func FreeUDPPort(t TB) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// chronyConf is a chronyd configuration that serves local stratum 2 time
// from the (untouched) system clock, with no command port.
func chronyConf(dir string, port int, extra []string) string {
	lines := []string{
		fmt.Sprintf("port %d", port),
		"bindaddress 127.0.0.1",
		"allow 127.0.0.1",
		"local stratum 2",
		"cmdport 0",
		"bindcmdaddress " + filepath.Join(dir, "chronyd.sock"),
		"pidfile " + filepath.Join(dir, "chronyd.pid"),
	}
	return strings.Join(append(lines, extra...), "\n") + "\n"
}

// StartChronyServer starts `chronyd -x` serving local stratum 2 on
// 127.0.0.1 at a free port and returns "127.0.0.1:PORT" once it answers.
func StartChronyServer(t TB, extraConf ...string) string {
	t.Helper()
	return StartChronyServerIn(t, nil, FreeUDPPort(t), extraConf...)
}

// StartChronyServerIn starts `chronyd -x` serving local stratum 2 on
// 127.0.0.1:port inside ns (nil: this namespace) and returns the address
// once it answers.
func StartChronyServerIn(t TB, ns *Netns, port int, extraConf ...string) string {
	t.Helper()
	root := Root(t)
	dir := privateDir(t)
	conf := filepath.Join(dir, "chrony.conf")
	if err := os.WriteFile(conf, []byte(chronyConf(dir, port, extraConf)), 0o600); err != nil {
		t.Fatal(err)
	}
	argv := NoCap(filepath.Join(root, "usr/sbin/chronyd"), "-x", "-d", "-u", "root", "-f", conf)
	Start(t, ns.Command(context.Background(), argv[0], argv[1:]...), "chronyd")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	WaitNTP(t, ns, addr)
	return addr
}

// privateDir is a temporary directory only root can enter (chronyd refuses
// a command-socket directory others can write to).
func privateDir(t TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// ntpsecConf serves orphan-mode stratum 2 with the discipline disabled and
// no rate limiting.
const ntpsecConf = `disable ntp
disable kernel
tos orphan 2
tos orphanwait 0
unrestrict default limited
`

// StartNTPsecServer starts NTPsec ntpd inside ns on 127.0.0.1:123 (ntpd has
// no port option) with its discipline disabled and without CAP_SYS_TIME.
func StartNTPsecServer(t TB, ns *Netns, extraConf ...string) {
	t.Helper()
	root := Root(t)
	dir := privateDir(t)
	conf := filepath.Join(dir, "ntp.conf")
	text := ntpsecConf + strings.Join(extraConf, "\n") + "\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	argv := NoCap(filepath.Join(root, "usr/sbin/ntpd"),
		"-n", "-c", conf, "-p", filepath.Join(dir, "ntpd.pid"), "-l", filepath.Join(dir, "ntpd.log"))
	Start(t, ns.Command(context.Background(), argv[0], argv[1:]...), "ntpd")
	WaitNTP(t, ns, "127.0.0.1:123")
}

// WaitNTP waits up to 20 s until addr answers an NTP client request with a
// synchronised reply (leap not 3, stratum 1-15), from inside ns when ns is
// not nil. NTPsec answers stratum 0 ("INIT") for a while after start.
func WaitNTP(t TB, ns *Netns, addr string) {
	t.Helper()
	var err error
	for try := 0; try < 100; try++ {
		if err = probe(ns, addr); err == nil {
			return
		}
	}
	t.Fatalf("NTP server %s did not answer synchronised within 20 s: %v", addr, err)
}

// probe sends one client request and waits 200 ms for any reply.
func probe(ns *Netns, addr string) error {
	conn, err := ns.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	req := make([]byte, 48)
	req[0] = 0x23 // version 4, mode 3
	if err := conn.SetDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
		return err
	}
	if _, err := conn.Write(req); err != nil {
		// ECONNREFUSED from the previous probe's ICMP: the read timeout did
		// not pace this try, so pace it here.
		<-time.After(200 * time.Millisecond)
		return err
	}
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			<-time.After(200 * time.Millisecond)
		}
		return err
	}
	if n < 48 {
		return fmt.Errorf("short reply (%d bytes)", n)
	}
	if leap, stratum := buf[0]>>6, buf[1]; leap == 3 || stratum == 0 || stratum > 15 {
		// Not ready: pace the next try as a timeout would.
		<-time.After(200 * time.Millisecond)
		return fmt.Errorf("unsynchronised reply (leap %d, stratum %d)", leap, stratum)
	}
	return nil
}

// Dial connects a socket that lives in the namespace (in the caller's when
// n is nil). The socket stays in the namespace for its whole life, so the
// test can use it from any goroutine.
func (n *Netns) Dial(network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := n.Do(func() error {
		var err error
		conn, err = net.Dial(network, addr)
		return err
	})
	return conn, err
}

// Do runs f on an OS thread that has entered the namespace (f runs in the
// caller's namespace when n is nil). Sockets f creates belong to the
// namespace. f must not start goroutines that create sockets.
func (n *Netns) Do(f func() error) error {
	if n == nil {
		return f()
	}
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	target, err := os.Open(filepath.Join("/run/netns", n.Name))
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", n.Name, err)
	}
	ferr := f()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: the runtime then discards it rather than
		// reuse a thread stuck in the wrong namespace.
		return errors.Join(ferr, fmt.Errorf("leave netns %s: %w", n.Name, err))
	}
	runtime.UnlockOSThread()
	return ferr
}
