package stephook

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProcessesOwnNetns reads a made-up /proc: only DHCP clients of this
// process's network namespace are returned.
func TestProcessesOwnNetns(t *testing.T) {
	root := t.TempDir()
	mk := func(pid, comm, netns string, argv ...string) {
		dir := filepath.Join(root, pid)
		if err := os.MkdirAll(filepath.Join(dir, "ns"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(netns, filepath.Join(dir, "ns/net")); err != nil {
			t.Fatal(err)
		}
		files := map[string]string{
			"comm":    comm + "\n",
			"cmdline": strings.Join(argv, "\x00") + "\x00",
			"stat":    pid + " (" + comm + ") S 1 " + pid + " 0",
			"environ": "PATH=/usr/bin\x00LD_PRELOAD=x.so\x00",
		}
		for name, text := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "self/ns"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("net:[4026531840]", filepath.Join(root, "self/ns/net")); err != nil {
		t.Fatal(err)
	}
	mk("100", "dhclient", "net:[4026531840]", "dhclient", "-4", "eth0")
	mk("200", "dhclient", "net:[4026532999]", "dhclient", "-4", "veth0") // another namespace
	mk("300", "sshd", "net:[4026531840]", "sshd")                        // not a DHCP client
	mk("400", "udhcpc", "net:[4026531840]", "udhcpc", "-i", "eth1")
	got, err := linuxSystem{proc: root}.processes()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].PID != 100 || got[1].PID != 400 {
		t.Fatalf("got %+v, want pids 100 and 400", got)
	}
	if got[0].PPID != 1 || strings.Join(got[0].Argv, " ") != "dhclient -4 eth0" || len(got[0].Env) != 2 || got[1].Env != nil {
		t.Errorf("dhclient %+v, udhcpc %+v", got[0], got[1])
	}
}

func TestCommandLines(t *testing.T) {
	a := parseDHClient([]string{"/sbin/dhclient", "-6", "-d", "-pf", "/run/x.pid", "-cf", "/etc/x.conf", "-e", "A=B", "eth0", "eth1"})
	if !a.v6 || !a.foreground || a.pidFile != "/run/x.pid" || a.lfFile != "/var/lib/dhcp/dhclient6.leases" || strings.Join(a.ifaces, ",") != "eth0,eth1" {
		t.Errorf("dhclient %+v", a)
	}
	for _, tt := range []struct {
		argv         []string
		iface, pidfn string
	}{
		{[]string{"udhcpc", "-i", "eth3", "-p", "/run/u.pid"}, "eth3", "/run/u.pid"},
		{[]string{"udhcpc", "-ieth4", "--pidfile=/run/v.pid"}, "eth4", "/run/v.pid"},
		{[]string{"udhcpc", "--interface", "eth5"}, "eth5", ""},
		{[]string{"udhcpc", "-f"}, "eth0", ""},
	} {
		if iface, pid := udhcpcArgs(tt.argv); iface != tt.iface || pid != tt.pidfn {
			t.Errorf("%q: %s %s, want %s %s", tt.argv, iface, pid, tt.iface, tt.pidfn)
		}
	}
	if got := dhcpcdTitleIfaces([]string{"dhcpcd: eth0 [ip4]"}); strings.Join(got, ",") != "eth0" {
		t.Errorf("dhcpcd title: %q", got)
	}
	if f := dhcpcdTitleFamily([]string{"dhcpcd: [manager] [ip4] [ip6]"}); f != 0 {
		t.Errorf("family %d", f)
	}
}

func TestNoSysTime(t *testing.T) {
	argv := []string{"/usr/sbin/dhclient", "-4", "eth0"}
	got := noSysTime(argv)
	if len(got) == len(argv) {
		t.Skip("no setpriv or no CAP_SETPCAP here: the client is started as it was")
	}
	if strings.Join(got[1:], " ") != "--bounding-set -sys_time -- /usr/sbin/dhclient -4 eth0" || filepath.Base(got[0]) != "setpriv" {
		t.Errorf("got %q", got)
	}
}

func TestLookSetpriv(t *testing.T) {
	dir := t.TempDir()
	bb, real := filepath.Join(dir, "bb"), filepath.Join(dir, "ul")
	for _, d := range []string{bb, real} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(bb, "busybox"), 0o755)
	if err := os.Symlink("busybox", filepath.Join(bb, "setpriv")); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(real, "setpriv"), 0o755)
	noexec := filepath.Join(dir, "noexec")
	if err := os.Mkdir(noexec, 0o755); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(noexec, "setpriv"), 0o644)
	for _, tc := range []struct {
		name, path, want string
	}{
		{"busybox's applet first on the PATH is skipped", bb + ":" + real, filepath.Join(real, "setpriv")},
		{"util-linux's first", real + ":" + bb, filepath.Join(real, "setpriv")},
		{"only busybox's", bb, ""},
		{"not executable", noexec + ":" + real, filepath.Join(real, "setpriv")},
		{"empty PATH", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := lookSetpriv(tc.path)
			if tc.want == "" {
				if err == nil {
					t.Errorf("found %s, want none", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("lookSetpriv = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestDHCPSocket reads a made-up /proc: a process holds a DHCP socket when
// one of its socket fds is a UDP socket on port 68 or 546, or a packet
// socket; other sockets, pipes and files do not count.
func TestDHCPSocket(t *testing.T) {
	const (
		udpHead    = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"
		packetHead = "sk               RefCnt Type Proto  Iface R Rmem   User   Inode\n"
	)
	udpRow := func(port, inode string) string {
		return "  1: 00000000:" + port + " 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 " + inode + " 2 0000000000000000 0\n"
	}
	for _, tt := range []struct {
		name        string
		links       []string // the fds' link targets
		udp, packet string
		want        bool
	}{
		{"bound: no socket", []string{"pipe:[7]", "/dev/null"}, udpHead + udpRow("0044", "555"), packetHead, false},
		{"renewing: UDP port 68", []string{"pipe:[7]", "socket:[555]"}, udpHead + udpRow("0035", "554") + udpRow("0044", "555"), packetHead, true},
		{"DHCPv6 client port", []string{"socket:[556]"}, udpHead + udpRow("0222", "556"), packetHead, true},
		{"rebinding: packet socket", []string{"socket:[600]"}, udpHead, packetHead + "0000000000000000 3      3     0300   2     1 0      0      600\n", true},
		{"a socket of another port", []string{"socket:[554]"}, udpHead + udpRow("0035", "554"), packetHead, false},
		{"garbled tables", []string{"socket:[555]"}, "x\n  1: 00000000:zz\n", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			fd := filepath.Join(root, "42/fd")
			for _, dir := range []string{fd, filepath.Join(root, "net")} {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for i, l := range tt.links {
				if err := os.Symlink(l, filepath.Join(fd, strconv.Itoa(i))); err != nil {
					t.Fatal(err)
				}
			}
			for name, text := range map[string]string{"udp": tt.udp, "packet": tt.packet} {
				if err := os.WriteFile(filepath.Join(root, "net", name), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := linuxSystem{proc: root}.dhcpSocket(42)
			if err != nil || got != tt.want {
				t.Errorf("dhcpSocket = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	if _, err := (linuxSystem{proc: t.TempDir()}).dhcpSocket(42); err == nil {
		t.Error("no such process: want an error")
	}
}

// FuzzDHCPInodes: any /proc/net table text gives inodes or nothing, never
// a panic; every inode it returns is a field of the text.
func FuzzDHCPInodes(f *testing.F) {
	f.Add("udp", "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n  1: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 555 2 0 0\n")
	f.Add("packet", "sk               RefCnt Type Proto  Iface R Rmem   User   Inode\n0000000000000000 3      3     0300   2     1 0      0      600\n")
	f.Add("udp6", "")
	f.Fuzz(func(t *testing.T, table, text string) {
		for _, ino := range dhcpInodes(table, []byte(text)) {
			if !strings.Contains(text, ino) {
				t.Fatalf("inode %q is not in the text", ino)
			}
		}
	})
}

// TestAwaitExit: the pidfd wait returns once the process has exited (a
// zombie counts: only its parent's wait is left), at once for a PID that
// is gone, and with the context's error for one that lives on.
func TestAwaitExit(t *testing.T) {
	s := linuxSystem{proc: "/proc"}
	start := func(t *testing.T) *exec.Cmd {
		cmd := exec.Command("sleep", "30")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	tests := []struct {
		name string
		pid  func(t *testing.T) int
		kill bool // SIGTERM it while awaitExit waits
		want error
	}{
		{"exits while waited for", func(t *testing.T) int { return start(t).Process.Pid }, true, nil},
		{"a zombie", func(t *testing.T) int {
			cmd := start(t)
			_ = cmd.Process.Signal(syscall.SIGTERM)
			for s.alive(cmd.Process.Pid) {
				time.Sleep(time.Millisecond)
			}
			return cmd.Process.Pid
		}, false, nil},
		{"gone", func(t *testing.T) int {
			cmd := start(t)
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return cmd.Process.Pid
		}, false, nil},
		{"lives on", func(t *testing.T) int { return start(t).Process.Pid }, false, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pid := tt.pid(t)
			timeout := 2 * time.Second
			if tt.want != nil {
				timeout = 200 * time.Millisecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			if tt.kill {
				time.AfterFunc(50*time.Millisecond, func() { _ = syscall.Kill(pid, syscall.SIGTERM) })
			}
			err := s.awaitExit(ctx, pid)
			if !errors.Is(err, tt.want) {
				t.Fatalf("awaitExit = %v, want %v", err, tt.want)
			}
			if tt.want == nil && s.alive(pid) {
				t.Fatal("awaitExit returned while the process lives")
			}
		})
	}
	if err := (linuxSystem{proc: t.TempDir()}).awaitExit(context.Background(), 1); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("awaitExit on a fake /proc = %v, want errors.ErrUnsupported", err)
	}
}
