package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The DHCP lab inside the guest: dnsmasq serves short leases in a network
// namespace of its own, at the far end of a veth pair; the client runs in
// the guest's main namespace, beside ntptool, as on a real host.
const (
	nsServer   = "dhs"
	ifServer   = "vs"
	ifClient   = "vc"
	serverCIDR = "198.18.0.1/24"
	dnsmasqLog = "/tmp/dnsmasq.log"
	clientLog  = "/tmp/dhcp-client.log" // udhcpc's and dhcpcd's output
	dhclientPF = "/tmp/dhclient.pid"
	dhclientLF = "/tmp/dhclient.leases"
	udhcpcPF   = "/tmp/udhcpc.pid"
)

// noCap runs argv without CAP_SYS_TIME in its bounding set: a DHCP client or
// server must not be able to change even the guest's clock.
func noCap(argv ...string) []string {
	return append([]string{setprivBin, "--bounding-set", "-sys_time", "--"}, argv...)
}

func ip(args ...string) (string, error) {
	out, err := exec.Command(ipBin, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// dhcpLab is the running lab.
type dhcpLab struct {
	s       *g
	client  string
	dnsmasq *exec.Cmd
	fg      *exec.Cmd // a client that runs in the foreground (udhcpc, dhcpcd)
}

func (s *g) startDHCPLab() (*dhcpLab, error) {
	lease := s.spec.LeaseSeconds
	if lease <= 0 {
		lease = 120
	}
	for _, a := range [][]string{
		{"netns", "add", nsServer},
		{"link", "add", ifServer, "type", "veth", "peer", "name", ifClient},
		{"link", "set", ifServer, "netns", nsServer},
		{"-n", nsServer, "link", "set", "lo", "up"},
		{"-n", nsServer, "addr", "add", serverCIDR, "dev", ifServer},
		{"-n", nsServer, "link", "set", ifServer, "up"}, {"link", "set", ifClient, "up"},
	} {
		if _, err := ip(a...); err != nil {
			return nil, err
		}
	}
	lab := &dhcpLab{s: s, client: s.spec.DHCPClient}
	argv := append([]string{ipBin, "netns", "exec", nsServer}, noCap("/usr/sbin/dnsmasq", "-k", "--conf-file=/dev/null",
		"--port=0", "--interface="+ifServer, "--bind-interfaces", "--no-ping",
		fmt.Sprintf("--dhcp-range=198.18.0.100,198.18.0.150,255.255.255.0,%ds", lease),
		// Authoritative: the server shares the guest's clock, so a step
		// forward expires its leases, and a renewal of an expired lease
		// gets "DHCPNAK lease not found" unless the server may hand it out
		// again. A LAN's DHCP server runs on its own clock: its lease is
		// still valid.
		"--dhcp-authoritative",
		"--dhcp-option=3", "--dhcp-option=6", "--dhcp-leasefile=/tmp/dnsmasq.leases",
		"--log-dhcp", "--log-facility="+dnsmasqLog, "--user=root", "--group=root")...)
	lab.dnsmasq = exec.Command(argv[0], argv[1:]...)
	if err := lab.dnsmasq.Start(); err != nil {
		return nil, fmt.Errorf("start dnsmasq: %w", err)
	}
	// dnsmasq's socket must be up before the client's first DISCOVER.
	if err := waitFor(5*time.Second, func() bool {
		b, _ := os.ReadFile(dnsmasqLog)
		return strings.Contains(string(b), "DHCP, IP range")
	}); err != nil {
		return lab, errors.New("dnsmasq did not start within 5 s")
	}
	if err := lab.startClient(); err != nil {
		return lab, err
	}
	return lab, nil
}

func (l *dhcpLab) startClient() error {
	var argv []string
	switch l.client {
	case "", "dhclient":
		// dhclient forks into the background once bound.
		argv = noCap("/usr/sbin/dhclient", "-4", "-pf", dhclientPF, "-lf", dhclientLF, "-sf", "/sbin/dhclient-script", "-cf", "/dev/null", ifClient)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
		out, err := runTimeout(cmd, 30*time.Second)
		if err != nil {
			return fmt.Errorf("dhclient: %v: %s", err, out)
		}
		return nil
	case "udhcpc":
		argv = noCap("/bin/busybox", "udhcpc", "-f", "-i", ifClient, "-s", "/e2e/udhcpc.script", "-p", udhcpcPF)
	case "dhcpcd":
		argv = noCap("/usr/sbin/dhcpcd", "-4", "-B", "-f", "/dev/null", ifClient)
	default:
		return fmt.Errorf("unknown DHCP client %q", l.client)
	}
	l.fg = exec.Command(argv[0], argv[1:]...)
	l.fg.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	logf, err := os.Create(clientLog)
	if err != nil {
		return err
	}
	l.fg.Stdout, l.fg.Stderr = logf, logf
	defer logf.Close()
	if err := l.fg.Start(); err != nil {
		return fmt.Errorf("start %s: %w", l.client, err)
	}
	return nil
}

// renewByHand renews the lease the client's own way, as an operator
// would without ntptool: dhclient has no "renew now", so SIGTERM and the
// same command line again (what ntptool's renewer does too); udhcpc
// SIGUSR1; dhcpcd -N. It is the baseline of the renewal latencies: a
// DHCPACK cannot come sooner than the client itself can send.
func (l *dhcpLab) renewByHand() error {
	pid := l.clientPID()
	if pid <= 0 {
		return errors.New("no client running")
	}
	switch l.client {
	case "", "dhclient":
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			return err
		}
		if err := waitForFine(3*time.Second, func() bool { return !l.clientAlive() }); err != nil {
			return fmt.Errorf("dhclient %d did not exit on SIGTERM", pid)
		}
		return l.startClient()
	case "udhcpc":
		return syscall.Kill(pid, syscall.SIGUSR1)
	case "dhcpcd":
		argv := noCap("/usr/sbin/dhcpcd", "-4", "-N", ifClient)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
		if out, err := runTimeout(cmd, 10*time.Second); err != nil {
			return fmt.Errorf("dhcpcd -N: %v: %s", err, out)
		}
		return nil
	}
	return fmt.Errorf("unknown DHCP client %q", l.client)
}

// scriptRenewals counts the renewals udhcpc's script reported in the
// client's log ("udhcpc-script: renew", e2e/build.go).
func (l *dhcpLab) scriptRenewals() int {
	b, _ := os.ReadFile(clientLog)
	return strings.Count(string(b), "udhcpc-script: renew ")
}

// clientPID is the running client's PID (0 if none).
func (l *dhcpLab) clientPID() int {
	if l.fg != nil {
		return l.fg.Process.Pid
	}
	b, err := os.ReadFile(dhclientPF)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// clientAlive reports whether the client runs. A zombie does not count:
// this init is PID 1 and reaps only its own children, so a client that a
// daemon restarted and that died stays a zombie, to which kill(pid, 0)
// still succeeds.
func (l *dhcpLab) clientAlive() bool {
	pid := l.clientPID()
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	return !isZombie(pid)
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // gone meanwhile
	}
	return statState(b) == 'Z'
}

// procStat is what /proc/PID/stat says of a process.
type procStat struct {
	comm  string
	state byte
	ppid  int
	ticks uint64 // CPU time, user and system, in clock ticks
}

// parseStat parses a /proc/PID/stat line (the command name, in
// parentheses, may hold spaces and parentheses itself).
func parseStat(b []byte) (procStat, bool) {
	l, r := strings.IndexByte(string(b), '('), strings.LastIndexByte(string(b), ')')
	if l < 0 || r < l {
		return procStat{}, false
	}
	f := strings.Fields(string(b[r+1:]))
	if len(f) < 2 || len(f[0]) != 1 {
		return procStat{}, false
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, false
	}
	st := procStat{comm: string(b[l+1 : r]), state: f[0][0], ppid: ppid}
	if len(f) > 12 {
		ut, _ := strconv.ParseUint(f[11], 10, 64)
		kt, _ := strconv.ParseUint(f[12], 10, 64)
		st.ticks = ut + kt
	}
	return st, true
}

// cpuSample is every process's CPU time and the guest's idle and total
// time, in clock ticks.
type cpuSample struct {
	procs       map[int]procStat
	idle, total uint64
}

func sampleCPU() cpuSample {
	c := cpuSample{procs: map[int]procStat{}}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		for i, f := range strings.Fields(line)[1:] {
			n, _ := strconv.ParseUint(f, 10, 64)
			c.total += n
			if i == 3 || i == 4 { // idle, iowait
				c.idle += n
			}
		}
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			if st, ok := parseStat(b); ok {
				c.procs[pid] = st
			}
		}
	}
	return c
}

// cpuUse says where the guest's CPU went between two samples: the idle
// share and the busiest processes (seconds at 100 ticks/s), "idle 12%;
// ntptool[90] 0.41 s, dhclient[150] 0.22 s".
func cpuUse(before, after cpuSample) string {
	type use struct {
		name  string
		ticks uint64
	}
	var uses []use
	for pid, a := range after.procs {
		t := a.ticks - min(a.ticks, before.procs[pid].ticks) // new processes count from 0
		if b, ok := before.procs[pid]; ok && b.comm != a.comm {
			t = a.ticks // the PID was reused
		}
		if t > 0 {
			uses = append(uses, use{fmt.Sprintf("%s[%d]", a.comm, pid), t})
		}
	}
	slices.SortFunc(uses, func(x, y use) int { return int(y.ticks) - int(x.ticks) })
	out := "idle ?"
	if d := after.total - before.total; d > 0 {
		out = fmt.Sprintf("idle %.0f%% of %.2f s", 100*float64(after.idle-before.idle)/float64(d), float64(d)/100)
	}
	for i, u := range uses {
		if i == 6 {
			break
		}
		sep := ", "
		if i == 0 {
			sep = "; "
		}
		out += fmt.Sprintf("%s%s %.2f s", sep, u.name, float64(u.ticks)/100)
	}
	return out
}

// clientInstances lists the running instances of a DHCP client: its live
// processes (by command line: udhcpc is a busybox applet) whose parent is
// not one of its own (dhcpcd's privilege separation forks helpers; a
// daemonised dhclient's parent has exited), as "PID: command line". Two
// instances on one interface fight over it.
func clientInstances(client string) []string {
	if client == "" {
		client = "dhclient"
	}
	ents, _ := os.ReadDir("/proc")
	type proc struct {
		st   procStat
		argv string
		is   bool
	}
	procs := map[int]proc{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		st, ok := parseStat(b)
		if !ok {
			continue
		}
		cl, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		argv := strings.Split(strings.TrimRight(string(cl), "\x00"), "\x00")
		procs[pid] = proc{st: st, argv: strings.Join(argv, " "), is: isClient(argv, client)}
	}
	var out []string
	for pid, p := range procs {
		if !p.is || p.st.state == 'Z' || procs[p.st.ppid].is {
			continue
		}
		out = append(out, fmt.Sprintf("%d: %s", pid, p.argv))
	}
	slices.Sort(out)
	return out
}

// isClient reports whether argv runs client (directly, or as a busybox
// applet; dhcpcd's processes retitle themselves "dhcpcd: ...").
func isClient(argv []string, client string) bool {
	if len(argv) == 0 {
		return false
	}
	name, _, _ := strings.Cut(argv[0], " ") // a retitled process: one string
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	name = strings.TrimSuffix(name, ":")
	switch {
	case name == client:
		return true
	case name == "busybox" && len(argv) > 1:
		return argv[1] == client
	}
	return false
}

// statState is the state field of a /proc/PID/stat line: the character
// after the command name in parentheses (which may hold spaces and
// parentheses itself); 0 if the line is malformed.
func statState(b []byte) byte {
	st, ok := parseStat(b)
	if !ok {
		return 0
	}
	return st.state
}

func (l *dhcpLab) stop() {
	if pid := l.clientPID(); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	if l.fg != nil {
		_, _ = runTimeout(l.fg, 0)
	}
	if l.dnsmasq != nil && l.dnsmasq.Process != nil {
		_ = l.dnsmasq.Process.Signal(syscall.SIGTERM)
		_, _ = runTimeout(l.dnsmasq, 0)
	}
}

var (
	inetRE  = regexp.MustCompile(`inet ([0-9.]+/[0-9]+)`)
	validRE = regexp.MustCompile(`valid_lft (\d+|forever)`)
)

// addr is the client's IPv4 address and its remaining valid lifetime (-1:
// forever); "" when it has none.
func (l *dhcpLab) addr() (cidr string, validLft int) {
	out, err := ip("-o", "-4", "addr", "show", "dev", ifClient)
	if err != nil {
		return "", 0
	}
	return parseAddr(out)
}

func parseAddr(out string) (string, int) {
	m := inetRE.FindStringSubmatch(out)
	if m == nil {
		return "", 0
	}
	v := validRE.FindStringSubmatch(out)
	switch {
	case v == nil:
		return m[1], 0
	case v[1] == "forever":
		return m[1], -1
	}
	n, _ := strconv.Atoi(v[1])
	return m[1], n
}

// acks counts dnsmasq's DHCPACKs so far.
func acks() int { return ackLog.count(dnsmasqLog) }

// ackLog counts "DHCPACK(" in a growing log, reading only what it gained
// since the last call: with --log-dhcp the log grows by some 15 lines a
// message, and reading it whole every 10 ms (ackWithin) took a third of
// the guest's CPU, which slowed the very renewals being timed.
var ackLog tokenCounter

type tokenCounter struct {
	mu    sync.Mutex
	off   int64
	n     int
	carry string // the last len(token)-1 bytes read: a token may span reads
}

const ackToken = "DHCPACK("

func (c *tokenCounter) count(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, err := os.Open(path)
	if err != nil {
		return c.n
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() < c.off {
		c.off, c.n, c.carry = 0, 0, "" // a new log
	}
	b, err := io.ReadAll(io.NewSectionReader(f, c.off, 1<<40))
	if err != nil {
		return c.n
	}
	c.off += int64(len(b))
	text := c.carry + string(b)
	c.n += strings.Count(text, ackToken)
	c.carry = text[max(len(text)-(len(ackToken)-1), 0):]
	return c.n
}

// waitBound waits for the client's address.
func (l *dhcpLab) waitBound(d time.Duration) (string, int, error) {
	var cidr string
	var lft int
	err := waitFor(d, func() bool { cidr, lft = l.addr(); return cidr != "" })
	if err != nil {
		return "", 0, fmt.Errorf("%s not bound within %v", l.client, d)
	}
	return cidr, lft, nil
}

// watchAddress polls the address every second for at most d; it returns
// whether the address was lost, and the guest monotonic time it was first
// seen gone (or the end of the watch).
func (l *dhcpLab) watchAddress(d time.Duration) (lost bool, at float64) {
	end := mono() + d.Seconds()
	for mono() < end {
		if cidr, _ := l.addr(); cidr == "" {
			return true, mono()
		}
		time.Sleep(time.Second)
	}
	return false, mono()
}

// scenarioDHCPNoHooks is the negative control of scenario 3 (the seed's
// failure): the guest clock is stepped back 1 h under a running ISC
// dhclient with no hook; dhclient's wall-clock timers then never fire and
// the kernel removes the address when its valid_lft runs out. With udhcpc
// or dhcpcd (scenario 4's clients, whose timers are monotonic) the same
// step is the control that shows the address survives without help.
func scenarioDHCPNoHooks(s *g) error {
	lab, err := s.startDHCPLab()
	if lab != nil {
		defer lab.stop()
	}
	if err != nil {
		return err
	}
	cidr, lft, err := lab.waitBound(30 * time.Second)
	if err != nil {
		return err
	}
	tBound := mono()
	s.note("%s bound %s valid_lft %d", lab.client, cidr, lft)
	s.rep.Facts["address"] = cidr
	s.rep.Set("valid_lft_at_bind_seconds", float64(lft))
	s.rep.Set("acks_before_step", float64(acks()))
	time.Sleep(5 * time.Second)
	// ntptool step with every renewer off: the step an operator makes
	// without ntptool's hooks (the Spec's Config switches them off).
	if err := os.WriteFile(ntptoolConf, []byte(s.spec.Config), 0o644); err != nil {
		return err
	}
	if err := s.checkGuest(); err != nil {
		return err
	}
	out, err := exec.Command(ntptoolBin, "step", "--by", "-1h", "--config", ntptoolConf).CombinedOutput()
	tStep := mono()
	s.rep.Facts["step_output"] = tail(string(out), 20)
	s.rep.Facts["step_exit"] = exitCode(err)
	if err != nil && exitCode(err) != "3" {
		return fmt.Errorf("ntptool step --by -1h: %v: %s", err, firstLineOf(string(out)))
	}
	s.note("ntptool step --by -1h with the renewers off: exit %s", exitCode(err))
	lease := float64(max(s.spec.LeaseSeconds, 120))
	left := lease + 60 - (mono() - tBound)
	lost, at := lab.watchAddress(time.Duration(left * float64(time.Second)))
	alive := lab.clientAlive()
	s.rep.Facts["address_lost"] = strconv.FormatBool(lost)
	s.rep.Set("address_lasted_after_bind_seconds", at-tBound)
	s.rep.Set("step_after_bind_seconds", tStep-tBound)
	s.labFacts(lab)
	s.rep.Set("acks_after_step", float64(acks())-s.rep.Metrics["acks_before_step"])
	s.note("address lost=%v %.1f s after the bind; %s alive=%v", lost, at-tBound, lab.client, alive)
	return nil
}

// labFacts reports the lab's end: whether the client still runs and how
// many of it, the server's DHCP messages and the client's own log.
func (s *g) labFacts(lab *dhcpLab) {
	s.rep.Facts["client_alive_at_end"] = strconv.FormatBool(lab.clientAlive())
	inst := clientInstances(lab.client)
	s.rep.Facts["client_instances"] = strings.Join(inst, "\n")
	s.rep.Set("client_instances_at_end", float64(len(inst)))
	s.rep.Facts["dnsmasq_log"] = dhcpMessages(tailFile(dnsmasqLog, 2000), 80)
	if lab.fg != nil {
		s.rep.Facts["dhcp_client_log"] = tailFile(clientLog, 60)
	}
}

// dhcpMessages keeps the last n lines of a dnsmasq log that name a DHCP
// message (DHCPREQUEST, DHCPACK, DHCPNAK, ...), not the options it sent.
func dhcpMessages(log string, n int) string {
	var keep []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, " DHCP") && !strings.Contains(l, "DHCP range") {
			keep = append(keep, l)
		}
	}
	return tail(strings.Join(keep, "\n"), n)
}

// waitForFine is waitFor polling every 20 ms, for latencies.
func waitForFine(d time.Duration, cond func() bool) error {
	end := mono() + d.Seconds()
	for !cond() {
		if mono() > end {
			return errors.New("timeout")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func waitFor(d time.Duration, cond func() bool) error {
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			return errors.New("timeout")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// runTimeout waits for a command (starting it first if needed) for at most
// d (0: 5 s), killing it after that.
func runTimeout(cmd *exec.Cmd, d time.Duration) ([]byte, error) {
	if d == 0 {
		d = 5 * time.Second
	}
	var out strings.Builder
	if cmd.Process == nil {
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			return nil, err
		}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return []byte(out.String()), err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		return []byte(out.String()), fmt.Errorf("%s: killed after %v", cmd.Path, d)
	}
}
