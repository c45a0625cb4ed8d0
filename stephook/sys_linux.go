package stephook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// linuxSystem is the real system. Its job is I/O with the kernel and other
// processes, so it is where the package reads the wall clock and sleeps.
type linuxSystem struct {
	proc    string // "/proc"
	busAddr string // D-Bus system bus address; "" for the default
}

func (linuxSystem) now() time.Time { return time.Now() }

func (linuxSystem) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// infinityLife is the kernel's "forever" lifetime (INFINITY_LIFE_TIME).
const infinityLife = 0xFFFFFFFF

func lifetime(sec int) time.Duration {
	if uint32(sec) == infinityLife {
		return Forever
	}
	return time.Duration(uint32(sec)) * time.Second
}

// dumpTries bounds the re-reads of a netlink dump that a concurrent change
// interrupted (a DHCP client's script setting its address while the
// renewer watches it): the kernel then flags the dump as possibly
// inconsistent, and it is read again.
const dumpTries = 5

func (s linuxSystem) addrs() ([]Addr, error) {
	for try := 1; ; try++ {
		out, err := s.addrsOnce()
		if err == nil || !errors.Is(err, netlink.ErrDumpInterrupted) || try == dumpTries {
			return out, err
		}
	}
}

func (linuxSystem) addrsOnce() ([]Addr, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var out []Addr
	for _, l := range links {
		attrs := l.Attrs()
		list, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return nil, fmt.Errorf("list addresses of %s: %w", attrs.Name, err)
		}
		for _, a := range list {
			ip, ok := netip.AddrFromSlice(a.IP)
			if !ok {
				continue
			}
			if ip.Is4In6() {
				ip = ip.Unmap()
			}
			ones, _ := a.Mask.Size()
			out = append(out, Addr{
				Interface: attrs.Name, Index: attrs.Index,
				Prefix: netip.PrefixFrom(ip, ones),
				Valid:  lifetime(a.ValidLft), Preferred: lifetime(a.PreferedLft),
				Flags: a.Flags,
			})
		}
	}
	return out, nil
}

func (linuxSystem) setLifetimes(a Addr, valid, preferred time.Duration) error {
	link, err := netlink.LinkByIndex(a.Index)
	if err != nil {
		return fmt.Errorf("link %s: %w", a.Interface, err)
	}
	secs := func(d time.Duration) int {
		if d == Forever {
			return infinityLife
		}
		return int(max(d/time.Second, 1))
	}
	addr := &netlink.Addr{
		IPNet:       &net.IPNet{IP: a.Prefix.Addr().AsSlice(), Mask: net.CIDRMask(a.Prefix.Bits(), a.Prefix.Addr().BitLen())},
		ValidLft:    secs(valid),
		PreferedLft: secs(preferred),
		// Keep the flags the kernel lets a replace change (IPv6 reads
		// them); the lifetimes decide IFA_F_PERMANENT.
		Flags: a.Flags & flagNoPrefixRoute,
	}
	// RTM_NEWADDR with NLM_F_REPLACE on an existing address changes its
	// lifetimes only; the caller checked that it exists.
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("set lifetimes of %s on %s: %w", a.Prefix, a.Interface, err)
	}
	return nil
}

// clientComms are the process names processes() keeps. comm is at most 15
// bytes: systemd-networkd shows as "systemd-network".
var clientComms = map[string]bool{
	"dhclient": true, "dhcpcd": true, "udhcpc": true, "udhcpc6": true, "busybox": true,
	"systemd-network": true, "NetworkManager": true,
}

func (s linuxSystem) processes() ([]Process, error) {
	self, err := os.Readlink(filepath.Join(s.proc, "self/ns/net"))
	if err != nil {
		return nil, fmt.Errorf("own network namespace: %w", err)
	}
	entries, err := os.ReadDir(s.proc)
	if err != nil {
		return nil, err
	}
	var out []Process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		dir := filepath.Join(s.proc, e.Name())
		comm, err := os.ReadFile(filepath.Join(dir, "comm"))
		if err != nil || !clientComms[strings.TrimSpace(string(comm))] {
			continue
		}
		// Only processes of our own network namespace: a client in another
		// one manages someone else's interfaces.
		if ns, err := os.Readlink(filepath.Join(dir, "ns/net")); err != nil || ns != self {
			continue
		}
		p := Process{PID: pid, Comm: strings.TrimSpace(string(comm))}
		if b, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
			p.Argv = splitNul(b)
		}
		if len(p.Argv) == 0 {
			continue // a kernel thread or a zombie
		}
		p.Exe, _ = os.Readlink(filepath.Join(dir, "exe"))
		p.Dir, _ = os.Readlink(filepath.Join(dir, "cwd"))
		if b, err := os.ReadFile(filepath.Join(dir, "stat")); err == nil {
			p.PPID = statPPID(string(b))
		}
		if p.Comm == "dhclient" {
			if b, err := os.ReadFile(filepath.Join(dir, "environ")); err == nil {
				p.Env = splitNul(b)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

func splitNul(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\x00")
}

// statPPID reads the parent PID from /proc/PID/stat: "pid (comm) state
// ppid ...", where comm may hold spaces and parentheses.
func statPPID(stat string) int {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// awaitExit waits until pid has exited or ctx ends, on a pidfd (readable
// once the process has exited, zombie or reaped), so that the exit is seen
// at once and without polling. errors.ErrUnsupported: no pidfd (Linux
// before 5.3, or another /proc than this namespace's): the caller polls.
func (s linuxSystem) awaitExit(ctx context.Context, pid int) error {
	if s.proc != "/proc" {
		return errors.ErrUnsupported
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	switch {
	case errors.Is(err, unix.ESRCH):
		return nil // gone already
	case err != nil:
		return errors.ErrUnsupported
	}
	f := os.NewFile(uintptr(fd), "pidfd") // non-blocking: in the runtime's poller
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return errors.ErrUnsupported
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Now()) })
	defer stop()
	err = rc.Read(func(fd uintptr) bool {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(p, 0)
		return err != nil || n > 0 // exited (or poll failed: stop waiting on it)
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func (s linuxSystem) alive(pid int) bool {
	// A zombie has exited: it only waits for its parent.
	b, err := os.ReadFile(filepath.Join(s.proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	st := string(b)
	if i := strings.LastIndexByte(st, ')'); i >= 0 && i+2 < len(st) {
		return st[i+2] != 'Z' && st[i+2] != 'X'
	}
	return true
}

func (linuxSystem) signal(pid int, sig syscall.Signal) error {
	if pid <= 1 {
		return fmt.Errorf("refusing to signal pid %d", pid)
	}
	return unix.Kill(pid, sig)
}

func (linuxSystem) readFile(path string) ([]byte, error) { return os.ReadFile(path) }

func (linuxSystem) readDir(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, err
}

func (linuxSystem) replaceFile(path string, data []byte) error {
	mode := os.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".ntptool-*")
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	if err := f.Chmod(mode); werr == nil {
		werr = err
	}
	if err := f.Sync(); werr == nil {
		werr = err
	}
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		os.Remove(f.Name())
	}
	return werr
}

// maxOutput bounds what is kept of a command's output.
const maxOutput = 64 << 10

func (linuxSystem) run(ctx context.Context, argv []string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = time.Second
	var out limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil && err != nil {
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return out.b.Bytes(), err
}

// capSetPCAP is CAP_SETPCAP's bit in /proc/self/status CapEff: needed to
// drop a capability from a child's bounding set.
const capSetPCAP = 8

// noSysTime returns argv run by setpriv without CAP_SYS_TIME in its
// bounding set, when setpriv exists and this process may drop it: a DHCP
// client never needs to set the clock, and the daemon that restarts it
// holds CAP_SYS_TIME. Otherwise argv as it is (a restart must not fail
// for want of setpriv).
func noSysTime(argv []string) []string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return argv
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapEff:"); ok {
			eff, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			if err != nil || eff&(1<<capSetPCAP) == 0 {
				return argv
			}
		}
	}
	setpriv, err := lookSetpriv(os.Getenv("PATH"))
	if err != nil {
		return argv
	}
	return append([]string{setpriv, "--bounding-set", "-sys_time", "--"}, argv...)
}

// lookSetpriv finds util-linux's setpriv on path. Busybox's setpriv
// applet (a link to busybox, first on the PATH where busybox's applets
// are installed) has no --bounding-set: the restarted client would exit
// at once, leaving the interface with no DHCP client. It is skipped.
func lookSetpriv(path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		if !filepath.IsAbs(dir) {
			continue // as exec.LookPath: never a relative directory
		}
		p := filepath.Join(dir, "setpriv")
		st, err := os.Stat(p)
		if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
			continue
		}
		if real, err := filepath.EvalSymlinks(p); err != nil || filepath.Base(real) == "busybox" {
			continue
		}
		return p, nil
	}
	return "", exec.ErrNotFound
}

func (linuxSystem) spawn(argv, env []string, dir string) (int, string, <-chan struct{}, error) {
	argv = noSysTime(argv)
	f, err := os.CreateTemp("", "ntptool-restart-*.log")
	if err != nil {
		return 0, "", nil, err
	}
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Dir = env, dir
	if dir != "" {
		if _, err := os.Stat(dir); err != nil {
			cmd.Dir = "/"
		}
	}
	// A file, not a pipe: a daemonising child keeps its copy open, and
	// nobody has to drain it.
	cmd.Stdout, cmd.Stderr = f, f
	// Its own session: a signal to ntptool's process group (Ctrl-C, a
	// service stop) must not take the DHCP client with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		os.Remove(f.Name())
		return 0, "", nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	return cmd.Process.Pid, f.Name(), exited, nil
}

// limitedBuffer keeps the first maxOutput bytes written to it.
type limitedBuffer struct {
	b         bytes.Buffer
	truncated bool
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxOutput - l.b.Len(); room < len(p) {
		l.truncated = true
		l.b.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return l.b.Write(p)
}

var errNoBus = errors.New("no D-Bus system bus")

// DHCP client ports: DHCPv4 (bootpc) and DHCPv6.
const bootpc, dhcpv6Client = 68, 546

func (s linuxSystem) dhcpSocket(pid int) (bool, error) {
	fds, err := os.ReadDir(filepath.Join(s.proc, strconv.Itoa(pid), "fd"))
	if err != nil {
		return false, err
	}
	var inodes []string
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(s.proc, strconv.Itoa(pid), "fd", fd.Name()))
		if ino, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			inodes = append(inodes, strings.TrimSuffix(ino, "]"))
		}
	}
	if len(inodes) == 0 {
		return false, nil
	}
	dhcp := map[string]bool{}
	for _, table := range []string{"udp", "udp6", "packet"} {
		b, err := os.ReadFile(filepath.Join(s.proc, "net", table))
		if err != nil && table != "udp6" { // no IPv6: no udp6
			return false, err
		}
		for _, ino := range dhcpInodes(table, b) {
			dhcp[ino] = true
		}
	}
	for _, ino := range inodes {
		if dhcp[ino] {
			return true, nil
		}
	}
	return false, nil
}

// dhcpInodes returns the socket inodes of a /proc/net table that a DHCP
// client listens on: every packet socket, and UDP sockets bound to the
// client ports. Lines it cannot read are skipped.
func dhcpInodes(table string, b []byte) []string {
	var out []string
	lines := strings.Split(string(b), "\n")
	head := strings.Fields(lines[0])
	col := slices.Index(head, "Inode")
	if table != "packet" {
		// The header of udp has "tx_queue rx_queue" and "tr tm->when" as
		// one column each in the rows: the inode is the 10th field.
		col = 9
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if col < 0 || len(f) <= col {
			continue
		}
		if table != "packet" {
			_, port, ok := strings.Cut(f[1], ":")
			p, err := strconv.ParseUint(port, 16, 16)
			if !ok || err != nil || (p != bootpc && p != dhcpv6Client) {
				continue
			}
		}
		out = append(out, f[col])
	}
	return out
}
