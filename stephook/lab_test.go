package stephook_test

// Network-namespace tests with real DHCP: dnsmasq serves 120 s leases in
// one namespace, ISC dhclient, dhcpcd or busybox udhcpc runs in another,
// and the renewers run inside the client's namespace (this test binary
// re-executed there with `ip netns exec`, so that every thread, netlink
// socket and restarted client is in it). Nothing touches the host's
// interfaces, /etc/resolv.conf (each namespace has its own under
// /etc/netns/NAME) or clock: the "clock step" of the faketime test moves
// dhclient's own view of the wall clock, through libfaketime.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ntptool/ntptool/config"
	"github.com/ntptool/ntptool/internal/peers"
	"github.com/ntptool/ntptool/stephook"
)

// helperEnv makes the test binary run one event's hooks instead of tests.
const helperEnv = "STEPHOOK_TEST_HELPER"

func TestMain(m *testing.M) {
	if ev := os.Getenv(helperEnv); ev != "" {
		os.Exit(helper(ev))
	}
	code := m.Run()
	peers.RemoveBuild()
	os.Exit(code)
}

// helper runs the renewers of a pre-step or post-step event of -1 h in
// this process's network namespace and prints the report as JSON.
func helper(event string) int {
	kind := map[string]stephook.Kind{"pre-step": stephook.PreStep, "post-step": stephook.PostStep}[event]
	h := config.Default().Hooks
	r, err := stephook.New(h, stephook.Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	rep := r.Run(context.Background(), stephook.Event{Kind: kind, Step: -time.Hour, Reason: "lab test"})
	b, _ := json.Marshal(map[string]any{"verdict": rep.Verdict.String(), "results": rep.Results})
	fmt.Println(string(b))
	return 0
}

// requireTools fails (NTPTOOL_REQUIRE_PEERS=1, as in CI) or skips unless
// the programs are installed.
func requireTools(t *testing.T, names ...string) {
	t.Helper()
	peers.RequireNetns(t)
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			if os.Getenv("NTPTOOL_REQUIRE_PEERS") == "1" {
				t.Fatalf("%s not installed (NTPTOOL_REQUIRE_PEERS=1: the DHCP lab tests must run; see .ci/run)", n)
			}
			t.Skipf("%s not installed (apt-get install dnsmasq-base isc-dhcp-client dhcpcd-base udhcpc faketime)", n)
		}
	}
}

const (
	leaseSeconds = 120 // dnsmasq's minimum
	fakeLib      = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
)

// lab is a DHCP server namespace and a client namespace joined by a veth.
type lab struct {
	t        *testing.T
	srv, cli *peers.Netns
	cif      string // the client's interface
	dir      string
	log      string // dnsmasq's log
	server   *exec.Cmd
}

var labSeq struct {
	sync.Mutex
	n int
}

// etcNetns guards /etc/netns, shared by the parallel tests.
var etcNetns sync.Mutex

// newLab makes the lab; with v6, dnsmasq also serves DHCPv6 addresses
// from 2001:db8:7::/64 and advertises 2001:db8:1::/64 for SLAAC.
func newLab(t *testing.T, v6 ...bool) *lab {
	t.Helper()
	withV6 := len(v6) > 0 && v6[0]
	requireTools(t, "dnsmasq", "setpriv")
	labSeq.Lock()
	labSeq.n++
	n := labSeq.n
	labSeq.Unlock()
	l := &lab{t: t, srv: peers.NewNetns(t), cli: peers.NewNetns(t), dir: t.TempDir()}
	l.log = filepath.Join(l.dir, "dnsmasq.log")
	sif := fmt.Sprintf("shs%d-%d", os.Getpid()%100000, n)
	l.cif = fmt.Sprintf("shc%d-%d", os.Getpid()%100000, n)
	// Runs before the namespaces are deleted: every process left in them
	// is one this test started.
	t.Cleanup(l.killAll)
	l.isolateEtc()
	steps := [][]string{
		{"ip", "link", "add", sif, "netns", l.srv.Name, "type", "veth", "peer", "name", l.cif, "netns", l.cli.Name},
		{"ip", "-n", l.srv.Name, "addr", "add", "198.18.0.1/24", "dev", sif},
	}
	if withV6 {
		// No duplicate address detection: the link-local addresses are
		// usable at once.
		steps = append(steps,
			[]string{"ip", "netns", "exec", l.srv.Name, "sysctl", "-qw", "net.ipv6.conf." + sif + ".accept_dad=0"},
			[]string{"ip", "netns", "exec", l.cli.Name, "sysctl", "-qw", "net.ipv6.conf." + l.cif + ".accept_dad=0"},
			[]string{"ip", "-n", l.srv.Name, "addr", "add", "2001:db8:7::1/64", "dev", sif, "nodad"},
			[]string{"ip", "-n", l.srv.Name, "addr", "add", "2001:db8:1::1/64", "dev", sif, "nodad"})
	}
	steps = append(steps,
		[]string{"ip", "-n", l.srv.Name, "link", "set", sif, "up"},
		[]string{"ip", "-n", l.cli.Name, "link", "set", l.cif, "up"})
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	argv := peers.NoCap("dnsmasq", "-k", "--conf-file=/dev/null", "--port=0", "--interface="+sif, "--bind-interfaces",
		fmt.Sprintf("--dhcp-range=198.18.0.100,198.18.0.150,255.255.255.0,%ds", leaseSeconds),
		"--dhcp-option=3", "--dhcp-option=6", "--dhcp-authoritative", "--log-dhcp",
		"--dhcp-leasefile="+filepath.Join(l.dir, "dnsmasq.leases"), "--log-facility="+l.log,
		"--pid-file="+filepath.Join(l.dir, "dnsmasq.pid"), "--user=root", "--group=root")
	if withV6 {
		argv = append(argv, "--enable-ra", "--ra-param="+sif+",5,600",
			fmt.Sprintf("--dhcp-range=2001:db8:7::100,2001:db8:7::1ff,64,%ds", leaseSeconds),
			"--dhcp-range=2001:db8:1::,ra-only,64,3600s")
	}
	l.server = peers.Start(t, l.srv.Command(context.Background(), argv[0], argv[1:]...), "dnsmasq")
	l.waitFor("dnsmasq ready", 10*time.Second, func() bool {
		b, _ := os.ReadFile(l.log)
		return bytes.Contains(b, []byte("DHCP, IP range"))
	})
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(l.log)
			t.Logf("dnsmasq log:\n%s", b)
		}
	})
	return l
}

// isolateEtc gives both namespaces an empty resolv.conf: `ip netns exec`
// binds /etc/netns/NAME/* over /etc, so that client scripts cannot write
// the host's.
func (l *lab) isolateEtc() {
	etcNetns.Lock()
	defer etcNetns.Unlock()
	for _, ns := range []*peers.Netns{l.srv, l.cli} {
		dir := filepath.Join("/etc/netns", ns.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			l.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), nil, 0o644); err != nil {
			l.t.Fatal(err)
		}
		l.t.Cleanup(func() {
			etcNetns.Lock()
			defer etcNetns.Unlock()
			os.RemoveAll(dir)
			os.Remove("/etc/netns") // only if empty: it may be another's
		})
	}
}

// killAll kills, by PID, every process in the lab's namespaces.
func (l *lab) killAll() {
	for _, ns := range []*peers.Netns{l.cli, l.srv} {
		out, _ := exec.Command("ip", "netns", "pids", ns.Name).Output()
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	// dhcpcd, killed, leaves its pid files and sockets, whose PIDs a later
	// process may reuse.
	for _, glob := range []string{"/run/dhcpcd/" + l.cif + ".*", "/run/dhcpcd/" + l.cif + "-[46].*", "/var/lib/dhcpcd/" + l.cif + ".lease*"} {
		files, _ := filepath.Glob(glob)
		for _, f := range files {
			os.Remove(f)
		}
	}
}

// waitFor polls cond (an external process's state) until it holds.
func (l *lab) waitFor(what string, limit time.Duration, cond func() bool) {
	l.t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			l.t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// count counts the dnsmasq log lines that hold s ("DHCPACK(").
func (l *lab) count(s string) int {
	b, _ := os.ReadFile(l.log)
	return bytes.Count(b, []byte(s))
}

// sampler reads the client's IPv4 addresses through netlink in its
// namespace.
type sampler struct {
	h    *netlink.Handle
	link netlink.Link
	v6   bool
}

func (l *lab) sampler() *sampler {
	l.t.Helper()
	ns, err := netns.GetFromName(l.cli.Name)
	if err != nil {
		l.t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(h.Close)
	link, err := h.LinkByName(l.cif)
	if err != nil {
		l.t.Fatal(err)
	}
	return &sampler{h: h, link: link}
}

// valid returns the valid_lft of the client's dynamic IPv4 address (or,
// with v6 set, its DHCPv6 /128), and whether it has one.
func (s *sampler) valid() (int, bool) {
	family := netlink.FAMILY_V4
	if s.v6 {
		family = netlink.FAMILY_V6
	}
	addrs, err := s.h.AddrList(s.link, family)
	if err != nil {
		return 0, false
	}
	for _, a := range addrs {
		ones, _ := a.Mask.Size()
		if a.Flags&0x80 == 0 && (!s.v6 || ones == 128) { // not IFA_F_PERMANENT
			return a.ValidLft, true
		}
	}
	return 0, false
}

// slaac returns the client's SLAAC address in 2001:db8:1::/64 and its
// valid_lft.
func (s *sampler) slaac() (string, int, bool) {
	addrs, err := s.h.AddrList(s.link, netlink.FAMILY_V6)
	if err != nil {
		return "", 0, false
	}
	for _, a := range addrs {
		if ones, _ := a.Mask.Size(); ones == 64 && strings.HasPrefix(a.IP.String(), "2001:db8:1:") {
			return a.IP.String(), a.ValidLft, true
		}
	}
	return "", 0, false
}

// watch samples the address every 10 ms until stop is called, which
// returns the number of samples and of samples without the address.
func (s *sampler) watch() (stop func() (samples, missing int)) {
	done := make(chan struct{})
	var samples, missing int
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, ok := s.valid(); !ok {
				missing++
			}
			samples++
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() (int, int) {
		close(done)
		<-finished
		return samples, missing
	}
}

// waitBound waits for the client's address and then until its valid_lft
// has dropped by 3 s, so that a renewal shows.
func (l *lab) waitBound(s *sampler) {
	l.t.Helper()
	l.waitFor("address bound", 30*time.Second, func() bool { _, ok := s.valid(); return ok })
	l.waitFor("valid_lft dropping", 10*time.Second, func() bool { v, ok := s.valid(); return ok && v <= leaseSeconds-3 })
}

// nsCommand runs argv inside the client's namespace without CAP_SYS_TIME.
func (l *lab) nsCommand(env []string, argv ...string) *exec.Cmd {
	argv = peers.NoCap(argv...)
	cmd := l.cli.Command(context.Background(), argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// event runs the hooks of a pre-step or post-step event in the client's
// namespace (this test binary as the helper) and returns its report.
func (l *lab) event(event string) helperReport {
	l.t.Helper()
	self, err := os.Executable()
	if err != nil {
		l.t.Fatal(err)
	}
	cmd := l.nsCommand([]string{helperEnv + "=" + event}, self)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		l.t.Fatalf("%s helper: %v\n%s", event, err, stderr.String())
	}
	var rep helperReport
	if err := json.Unmarshal(out, &rep); err != nil {
		l.t.Fatalf("%s helper output %q: %v\n%s", event, out, err, stderr.String())
	}
	l.t.Logf("%s: %s", event, strings.TrimSpace(stderr.String()))
	return rep
}

type helperReport struct {
	Verdict string `json:"verdict"`
	Results []struct {
		Hook    string `json:"hook"`
		Name    string `json:"name"`
		Client  string `json:"client"`
		Outcome string `json:"outcome"`
		Action  string `json:"action"`
		Error   string `json:"error"`
		Before  []struct {
			Valid int `json:"valid_lft_seconds"`
		} `json:"before"`
		After []struct {
			Valid int `json:"valid_lft_seconds"`
		} `json:"after"`
	} `json:"results"`
}

// dhclientScript is the client's script: Debian's dhclient-script, without
// DNS, host name or NTP servers.
func (l *lab) dhclientScript() string {
	p := filepath.Join(l.dir, "dhclient-script")
	body := "#!/bin/sh\nunset new_domain_name_servers new_domain_name new_domain_search new_host_name new_ntp_servers new_dhcp6_name_servers new_dhcp6_domain_search\nexec /sbin/dhclient-script \"$@\"\n"
	if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
		l.t.Fatal(err)
	}
	return p
}

// startDHClient6 starts ISC dhclient -6 (stateful DHCPv6).
func (l *lab) startDHClient6() {
	l.t.Helper()
	cmd := l.nsCommand(nil, "dhclient", "-6", "-v", "-pf", filepath.Join(l.dir, "dhclient6.pid"),
		"-lf", filepath.Join(l.dir, "dhclient6.leases"), "-sf", l.dhclientScript(), "-cf", "/dev/null", l.cif)
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("dhclient -6: %v\n%s", err, out)
	}
}

// startDHClient starts ISC dhclient (it daemonises once bound); with
// faketime, its clock goes through libfaketime, offset by the file it
// returns.
func (l *lab) startDHClient(faketime bool) (fakeFile string) {
	l.t.Helper()
	var env []string
	if faketime {
		if _, err := os.Stat(fakeLib); err != nil {
			requireTools(l.t, "faketime") // fails or skips with the package name
			l.t.Fatalf("%s missing", fakeLib)
		}
		fakeFile = filepath.Join(l.dir, "faketime.rc")
		if err := os.WriteFile(fakeFile, []byte("+0\n"), 0o644); err != nil {
			l.t.Fatal(err)
		}
		env = []string{"LD_PRELOAD=" + fakeLib, "FAKETIME_TIMESTAMP_FILE=" + fakeFile, "FAKETIME_NO_CACHE=1", "FAKETIME_DONT_FAKE_MONOTONIC=1"}
	}
	cmd := l.nsCommand(env, "dhclient", "-4", "-v", "-pf", filepath.Join(l.dir, "dhclient.pid"),
		"-lf", filepath.Join(l.dir, "dhclient.leases"), "-sf", l.dhclientScript(), "-cf", "/dev/null", l.cif)
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("dhclient: %v\n%s", err, out)
	}
	return fakeFile
}

func (l *lab) startDHCPCD() {
	l.t.Helper()
	conf := filepath.Join(l.dir, "dhcpcd.conf")
	text := "nohook resolv.conf, hostname, ntp.conf, timesyncd, wpa_supplicant\nnoipv4ll\nipv4only\noption subnet_mask, routers\n"
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		l.t.Fatal(err)
	}
	if out, err := l.nsCommand(nil, "dhcpcd", "-4", "-f", conf, "--noipv4ll", "-w", l.cif).CombinedOutput(); err != nil {
		l.t.Fatalf("dhcpcd: %v\n%s", err, out)
	}
}

// startDHCPCD6 starts dhcpcd for DHCPv6 only (it follows the router
// advertisement's M flag to DHCPv6 and makes its own SLAAC address).
func (l *lab) startDHCPCD6() {
	l.t.Helper()
	conf := filepath.Join(l.dir, "dhcpcd6.conf")
	text := "nohook resolv.conf, hostname, ntp.conf, timesyncd, wpa_supplicant\nipv6only\nia_na 1\n"
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		l.t.Fatal(err)
	}
	if out, err := l.nsCommand(nil, "dhcpcd", "-6", "-f", conf, "-w", l.cif).CombinedOutput(); err != nil {
		l.t.Fatalf("dhcpcd -6: %v\n%s", err, out)
	}
}

// startUDHCPC starts busybox udhcpc with a script that puts the lease time
// into the address lifetimes (Debian's default script makes them
// infinite), with iproute2's ip: busybox's has no valid_lft.
func (l *lab) startUDHCPC() {
	l.t.Helper()
	ip, err := exec.LookPath("ip")
	if err != nil {
		l.t.Fatal(err)
	}
	scriptPath := filepath.Join(l.dir, "udhcpc.script")
	body := fmt.Sprintf(`#!/bin/sh
case $1 in
  deconfig) %[1]s link set "$interface" up; %[1]s -4 addr flush dev "$interface" ;;
  bound|renew) %[1]s -4 addr replace "$ip/${mask:-24}" dev "$interface" valid_lft "$lease" preferred_lft "$lease" ;;
esac
exit 0
`, ip)
	if err := os.WriteFile(scriptPath, []byte(body), 0o755); err != nil {
		l.t.Fatal(err)
	}
	cmd := l.nsCommand(nil, "udhcpc", "-f", "-i", l.cif, "-s", scriptPath, "-p", filepath.Join(l.dir, "udhcpc.pid"))
	peers.Start(l.t, cmd, "udhcpc")
}

// TestRenewersNetns: for each client, the pre-step and the post-step
// hooks renew the lease — dnsmasq logs a DHCPREQUEST and DHCPACK, valid_lft
// is back near the lease time — and the address never goes away (sampled
// every 10 ms through each trigger).
func TestRenewersNetns(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		client string
		tools  []string
		start  func(l *lab)
	}{
		{"dhclient", []string{"dhclient"}, func(l *lab) { l.startDHClient(false) }},
		{"dhcpcd", []string{"dhcpcd"}, (*lab).startDHCPCD},
		{"udhcpc", []string{"udhcpc"}, (*lab).startUDHCPC},
	} {
		t.Run(tt.client, func(t *testing.T) {
			t.Parallel()
			requireTools(t, tt.tools...)
			l := newLab(t)
			tt.start(l)
			s := l.sampler()
			for _, event := range []string{"pre-step", "post-step"} {
				l.waitBound(s)
				before, _ := s.valid()
				reqs, acks := l.count("DHCPREQUEST("), l.count("DHCPACK(")
				stop := s.watch()
				rep := l.event(event)
				samples, missing := stop()
				after, ok := s.valid()
				t.Logf("%s: valid_lft %d s -> %d s; %d samples, %d without the address; %+v", event, before, after, samples, missing, rep)
				if missing != 0 || samples < 2 {
					t.Errorf("%s: the address was missing in %d of %d samples", event, missing, samples)
				}
				if !ok || after < leaseSeconds-5 {
					t.Errorf("%s: valid_lft %d s after the renewal, want about %d s", event, after, leaseSeconds)
				}
				if l.count("DHCPREQUEST(") <= reqs || l.count("DHCPACK(") <= acks {
					t.Errorf("%s: dnsmasq logged no new DHCPREQUEST/DHCPACK", event)
				}
				if len(rep.Results) != 1 || rep.Results[0].Client != tt.client || rep.Results[0].Outcome != "ok" || rep.Verdict != "proceed" {
					t.Errorf("%s: report %+v, want one ok renewal by %s", event, rep, tt.client)
				}
			}
		})
	}
}

// TestUDHCPCRenewalInProgress: a udhcpc whose own renewal waits for the
// server's answer (an operator's SIGUSR1, dnsmasq stopped) is not signalled
// again — busybox would drop the address and start over — but awaited:
// once dnsmasq answers, the hook reports the renewal and the address never
// went away.
func TestUDHCPCRenewalInProgress(t *testing.T) {
	t.Parallel()
	requireTools(t, "udhcpc")
	l := newLab(t)
	l.startUDHCPC()
	s := l.sampler()
	l.waitBound(s)
	b, err := os.ReadFile(filepath.Join(l.dir, "udhcpc.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("udhcpc pid file %q", b)
	}
	server := l.server.Process
	if err := server.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer server.Signal(syscall.SIGCONT)
	stop := s.watch()
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	l.waitFor("udhcpc's renewal request", 5*time.Second, func() bool { return l.udpQueued() })
	// dnsmasq answers 1 s into the hook (udhcpc waits 3 s for it).
	go func() {
		time.Sleep(time.Second)
		server.Signal(syscall.SIGCONT)
	}()
	rep := l.event("pre-step")
	samples, missing := stop()
	after, ok := s.valid()
	t.Logf("valid_lft %d s after; %d samples, %d without the address; %+v", after, samples, missing, rep)
	if missing != 0 || samples < 2 {
		t.Errorf("the address was missing in %d of %d samples", missing, samples)
	}
	if !ok || after < leaseSeconds-5 {
		t.Errorf("valid_lft %d s after the renewal, want about %d s", after, leaseSeconds)
	}
	if len(rep.Results) != 1 || rep.Results[0].Outcome != "ok" || !strings.Contains(rep.Results[0].Action, "already renewing") {
		t.Errorf("report %+v; want the renewal under way awaited, ok", rep)
	}
}

// udpQueued reports whether a datagram waits in the stopped dnsmasq's
// DHCP socket (port 67 of the server namespace): the client's request.
func (l *lab) udpQueued() bool {
	out, err := exec.Command("ip", "netns", "exec", l.srv.Name, "cat", "/proc/net/udp").Output()
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasSuffix(f[1], ":0043") {
			_, rx, _ := strings.Cut(f[4], ":")
			if n, err := strconv.ParseUint(rx, 16, 64); err == nil && n > 0 {
				return true
			}
		}
	}
	return false
}

// TestDHCPv6Netns: the DHCPv6 leases of dhclient -6 and dhcpcd -6 are
// renewed by the pre-step and post-step hooks without a gap (dhclient: a
// fresh Solicit with the same DUID, since a restart alone would only
// Confirm), and the SLAAC address beside them is left alone.
func TestDHCPv6Netns(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		client string
		start  func(l *lab)
		// kernelSLAAC: the kernel keeps making the SLAAC address (dhcpcd
		// takes router advertisements over and makes its own).
		kernelSLAAC bool
	}{
		{"dhclient", (*lab).startDHClient6, true},
		{"dhcpcd", (*lab).startDHCPCD6, false},
	} {
		t.Run(tt.client, func(t *testing.T) {
			t.Parallel()
			requireTools(t, tt.client)
			l := newLab(t, true)
			s := l.sampler()
			s.v6 = true
			l.waitFor("SLAAC address", 30*time.Second, func() bool { _, _, ok := s.slaac(); return ok })
			tt.start(l)
			for _, event := range []string{"pre-step", "post-step"} {
				l.waitBound(s)
				reqs, replies := l.count("DHCPREQUEST(")+l.count("DHCPRENEW("), l.count("DHCPREPLY(")
				slaac, _, _ := s.slaac()
				stop := s.watch()
				rep := l.event(event)
				samples, missing := stop()
				after, _ := s.valid()
				t.Logf("%s: %d samples, %d without the address, valid_lft %d s after; %+v", event, samples, missing, after, rep)
				if missing != 0 || after < leaseSeconds-5 {
					t.Errorf("%s: %d of %d samples without the address, valid_lft %d s after", event, missing, samples, after)
				}
				if l.count("DHCPREQUEST(")+l.count("DHCPRENEW(") <= reqs || l.count("DHCPREPLY(") <= replies {
					t.Errorf("%s: dnsmasq logged no new DHCPv6 Request/Renew and Reply", event)
				}
				if len(rep.Results) != 1 || rep.Results[0].Client != tt.client || rep.Results[0].Outcome != "ok" || len(rep.Results[0].Before) != 1 {
					t.Errorf("%s: report %+v, want one ok renewal of the one DHCPv6 address (not the SLAAC one)", event, rep)
				}
				if now, _, ok := s.slaac(); tt.kernelSLAAC && (!ok || now != slaac) {
					t.Errorf("%s: SLAAC address %s changed to %s", event, slaac, now)
				}
			}
		})
	}
}

// TestDHClientFaketime reproduces the seed's failure with ISC dhclient
// whose wall clock alone is stepped back 1 h (libfaketime): without
// ntptool the kernel removes the address at expiry; with the pre-step and
// post-step renewals it survives past that expiry. External-step detection
// cannot see a faketime step (the kernel clock is not set), so the test
// triggers the post-step event itself.
func TestDHClientFaketime(t *testing.T) {
	t.Parallel()
	for _, hooks := range []bool{false, true} {
		t.Run(map[bool]string{false: "without ntptool", true: "with ntptool"}[hooks], func(t *testing.T) {
			t.Parallel()
			requireTools(t, "dhclient")
			l := newLab(t)
			fake := l.startDHClient(true)
			s := l.sampler()
			l.waitFor("address bound", 30*time.Second, func() bool { _, ok := s.valid(); return ok })
			bound := time.Now()
			if hooks {
				if rep := l.event("pre-step"); rep.Verdict != "proceed" || len(rep.Results) != 1 || rep.Results[0].Outcome != "ok" {
					t.Fatalf("pre-step: %+v", rep)
				}
				bound = time.Now() // the pre-step renewal restarted the lease
			}
			// The step: dhclient's wall clock goes back 1 h.
			if err := os.WriteFile(fake, []byte("-3600\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if hooks {
				if rep := l.event("post-step"); rep.Verdict != "proceed" || len(rep.Results) != 1 || rep.Results[0].Outcome != "ok" {
					t.Fatalf("post-step: %+v", rep)
				}
			}
			expiry := bound.Add(leaseSeconds * time.Second)
			if !hooks {
				// The negative control: the address IS lost at expiry.
				l.waitFor("address removed at expiry", time.Until(expiry)+20*time.Second, func() bool { _, ok := s.valid(); return !ok })
				if lost := time.Since(bound); lost < (leaseSeconds-5)*time.Second {
					t.Errorf("address lost %v after binding, before its %d s lease ended", lost, leaseSeconds)
				}
				return
			}
			// With ntptool: present through the old expiry and 10 s more,
			// kept by the restarted dhclient's own renewals.
			acks := l.count("DHCPACK(")
			stop := s.watch()
			for time.Now().Before(expiry.Add(10 * time.Second)) {
				time.Sleep(100 * time.Millisecond)
			}
			samples, missing := stop()
			v, ok := s.valid()
			t.Logf("%d samples, %d without the address; valid_lft %d s at the end; %d ACKs since", samples, missing, v, l.count("DHCPACK(")-acks)
			if missing != 0 || !ok {
				t.Errorf("the address was missing in %d of %d samples", missing, samples)
			}
			if l.count("DHCPACK(") <= acks {
				t.Errorf("the restarted dhclient did not renew by itself")
			}
		})
	}
}

// TestLeaseCommandNetns: `ntptool lease --json` in the lab reports dhclient,
// its lease file and times, and the verdict: a step back of up to
// valid_lft minus the time to T1 is safe, any forward step is.
func TestLeaseCommandNetns(t *testing.T) {
	t.Parallel()
	requireTools(t, "dhclient")
	bin := peers.BuildNtptool(t)
	l := newLab(t)
	l.startDHClient(false)
	s := l.sampler()
	l.waitFor("address bound", 30*time.Second, func() bool { _, ok := s.valid(); return ok })
	ran := time.Now()
	out, err := l.nsCommand(nil, bin, "lease", "--json").Output()
	if err != nil {
		t.Fatalf("ntptool lease: %v", err)
	}
	var got struct {
		Addresses []struct {
			Interface string `json:"interface"`
			Address   string `json:"address"`
			Family    string `json:"family"`
			Valid     int    `json:"valid_lft_seconds"`
			Client    string `json:"client"`
			PID       int    `json:"pid"`
			LeaseFile string `json:"lease_file"`
			Lease     *struct {
				Address   string  `json:"address"`
				LeaseTime float64 `json:"lease_time_seconds"`
				Renew     string  `json:"renew"`
				Expire    string  `json:"expire"`
			} `json:"lease"`
			Verdict struct {
				MaxBackward *float64 `json:"max_backward_step_seconds"`
				MaxForward  *float64 `json:"max_forward_step_seconds"`
				AtRisk      bool     `json:"at_risk"`
				Covered     bool     `json:"covered"`
			} `json:"verdict"`
		} `json:"addresses"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Logf("%s", out)
	if len(got.Addresses) != 1 {
		t.Fatalf("want the one dynamic address, got %s", out)
	}
	a := got.Addresses[0]
	leases, err := stephook.ParseLeases(mustRead(t, filepath.Join(l.dir, "dhclient.leases")))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := stephook.LatestLease(leases, l.cif, 4)
	if a.Interface != l.cif || a.Family != "ipv4" || a.Client != "dhclient" || a.PID == 0 ||
		a.LeaseFile != filepath.Join(l.dir, "dhclient.leases") || a.Lease == nil {
		t.Fatalf("address %+v", a)
	}
	if netip.MustParsePrefix(a.Address).Addr() != want.Address || a.Lease.LeaseTime != leaseSeconds ||
		a.Lease.Renew != want.Renew.Format(time.RFC3339) || a.Lease.Expire != want.Expire.Format(time.RFC3339) {
		t.Errorf("lease %+v, want %+v", a.Lease, want)
	}
	// The margin is valid_lft − (renew − now): dhclient schedules its
	// renewal (a little before dnsmasq's T1 of 60 s) by the wall clock.
	wantBack := float64(a.Valid) - want.Renew.Sub(ran).Seconds()
	back := a.Verdict.MaxBackward
	if back == nil || *back < wantBack-2 || *back > wantBack+2 || *back > leaseSeconds || a.Verdict.MaxForward != nil || a.Verdict.AtRisk || !a.Verdict.Covered {
		t.Errorf("verdict %+v (max back %v), want %.0f s back, no forward limit, covered", a.Verdict, deref(back), wantBack)
	}

	// `ntptool renew IFACE` in the namespace renews it as the hook does.
	l.waitBound(s)
	out, err = l.nsCommand(nil, bin, "renew", "--json", l.cif).Output()
	if err != nil {
		t.Fatalf("ntptool renew: %v: %s", err, out)
	}
	var rep struct {
		Results []struct {
			Client  string `json:"client"`
			Outcome string `json:"outcome"`
			Before  []struct {
				Valid int `json:"valid_lft_seconds"`
			} `json:"before"`
			After []struct {
				Valid int `json:"valid_lft_seconds"`
			} `json:"after"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(rep.Results) != 1 || rep.Results[0].Client != "dhclient" || rep.Results[0].Outcome != "ok" ||
		len(rep.Results[0].After) != 1 || rep.Results[0].After[0].Valid < leaseSeconds-2 || rep.Results[0].Before[0].Valid > leaseSeconds-3 {
		t.Errorf("ntptool renew: %s", out)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
