// Command daemon is the daemon's footprint benchmark behind `make
// bench-daemon`, and its soak behind `make soak`.
//
// Footprint: four `ntptool serve` instances on 127.0.0.1-4 (chrony keys
// its sources by address, so each needs its own) serve local stratum 2;
// `ntptool run --no-clock-control` and `chronyd -x` poll the same four
// (iburst, default polling: 64 s to 1024 s), started together, both
// under setpriv without CAP_SYS_TIME, so that neither can change the
// clock. After a warm-up (the iburst start-up), both are measured over the
// same window (default 60 s) from /proc: the resident set (VmRSS, and
// its peak VmHWM), the CPU time (schedstat, summed over threads), and the
// wake-ups (voluntary context switches, summed over /proc/PID/task/*). The
// stripped static binary's size comes from -ntptool (make build). Goals:
// RSS ≤ 10 MiB, CPU and wake-ups ≤ chronyd's, binary ≤ 12 MiB.
//
// Soak (-soak 10m): the same four servers and `ntptool run` alone, with
// short polls (-soak-poll) so that flapping matters; every -flap one
// server is stopped and the one stopped before started again, and every
// sixth flap (the third, ninth, ...) all four are down for two periods
// (unreachable sources and holdover, then they come back). Every -every the daemon's RSS, threads and open
// file descriptors are printed; the run passes when none of them grows
// (the last third's maximum within the first two thirds' plus a small
// slack). The daemon does not expose its goroutine count; its threads
// stand in (a goroutine leak that blocks in system calls grows them, one
// that holds sockets or files grows the descriptors, and any grows RSS).
//
// Everything is bounded: the whole run by -budget, every process started
// is stopped by its PID, nothing else is touched.
//
// Usage: go run ./bench/daemon -ntptool bin/ntptool [-window 60s] [-soak 10m]
package main

import (
	"context"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ntptool/ntptool/control"
	"github.com/ntptool/ntptool/internal/peers"
)

type options struct {
	ntptool  string
	root     string
	sources  int
	warmup   time.Duration
	window   time.Duration
	soak     time.Duration
	flap     time.Duration
	every    time.Duration
	soakPoll int
	// soakMetrics: read go_goroutines from the daemon's /metrics.
	soakMetrics bool
	budget      time.Duration
	keep        bool
	journal     bool
	env         envList
	runs        int
}

// envList is the repeatable -env flag.
type envList []string

func (e *envList) String() string { return strings.Join(*e, " ") }
func (e *envList) Set(v string) error {
	if !strings.Contains(v, "=") {
		return fmt.Errorf("want KEY=VALUE, got %q", v)
	}
	*e = append(*e, v)
	return nil
}

// Goals of issue 8.
const (
	goalRSSKiB    = 10 * 1024
	goalBinaryMiB = 12
)

func main() {
	var o options
	flag.StringVar(&o.ntptool, "ntptool", "bin/ntptool", "the ntptool binary (make build: stripped, static)")
	flag.StringVar(&o.root, "peers", os.Getenv("NTPTOOL_PEERS"), "peers root (scripts/peers.sh); default $NTPTOOL_PEERS or .cache/peers/root")
	flag.IntVar(&o.sources, "sources", 4, "servers (1-4), on 127.0.0.1 up to 127.0.0.4")
	flag.DurationVar(&o.warmup, "warmup", 20*time.Second, "start-up before the window (the iburst exchanges)")
	flag.DurationVar(&o.window, "window", 60*time.Second, "measurement window")
	flag.DurationVar(&o.soak, "soak", 0, "run the soak for this long instead of the footprint (e.g. 10m)")
	flag.DurationVar(&o.flap, "flap", 10*time.Second, "soak: flap a server this often")
	flag.DurationVar(&o.every, "every", time.Minute, "soak: print the figures this often")
	flag.IntVar(&o.soakPoll, "soak-poll", 1, "soak: the sources' minpoll and maxpoll, log2 s")
	flag.BoolVar(&o.soakMetrics, "soak-metrics", true, "soak: count the daemon's goroutines on its metrics endpoint (false for a -tags nometrics build)")
	flag.DurationVar(&o.budget, "budget", 0, "bound on the whole run (default: the run's length plus 2 min)")
	flag.BoolVar(&o.keep, "keep", false, "keep the run's directory (logs, configs)")
	flag.BoolVar(&o.journal, "journal", false, "give ntptool its audit journal (one fsynced line and a new head file per clock update; chronyd keeps none, so off by default)")
	flag.IntVar(&o.runs, "runs", 1, "footprint: windows to measure, each with freshly started daemons; more than one adds a table of medians")
	flag.Var(&o.env, "env", "KEY=VALUE added to ntptool run's environment, repeatable (experiments: GOMAXPROCS=1, GOGC=...)")
	flag.Parse()
	if o.sources < 1 || o.sources > 4 || o.runs < 1 || o.runs > 20 || o.window <= 0 || o.warmup < 0 || o.soak < 0 || o.flap <= 0 || o.every <= 0 {
		fmt.Fprintln(os.Stderr, "bench-daemon: bad flags (see -help)")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench-daemon:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (setpriv --bounding-set needs CAP_SETPCAP)")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		return errors.New("setpriv (util-linux) not found")
	}
	if o.root == "" && o.soak == 0 {
		// Before anything is made or started: a fatal exit skips the deferred
		// stops (it left eight `ntptool serve` running once).
		o.root = peers.Root(&peers.Runner{}) // fatal (exits) when the peers are missing
	}
	length := time.Duration(o.runs) * (o.warmup + o.window + 5*time.Second)
	if o.soak > 0 {
		length = o.soak
	}
	if o.budget == 0 {
		o.budget = length + 2*time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.budget)
	defer cancel()
	bin, err := filepath.Abs(o.ntptool)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "bench-daemon-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "run directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	// chronyd refuses a command socket directory that others may enter.
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	b := &bench{o: o, bin: bin, dir: dir}
	defer b.stopAll()
	sets := 2
	if o.soak > 0 {
		sets = 1
	}
	if err := b.startServers(sets); err != nil {
		return err
	}
	if o.soak > 0 {
		return b.soakRun(ctx)
	}
	var reports []report
	for i := range o.runs {
		r, err := b.footprint(ctx, i)
		if err != nil {
			return err
		}
		r.print(os.Stdout)
		reports = append(reports, r)
	}
	if len(reports) > 1 {
		printMedians(os.Stdout, reports)
	}
	return nil
}

// bench is one run's state.
type bench struct {
	o       options
	bin     string
	dir     string
	servers []*server
	procs   []*proc
}

// server is one loopback `ntptool serve`.
type server struct {
	addr string // 127.0.0.N:PORT
	argv []string
	p    *proc
	n    int
}

// startServers starts sets × o.sources servers on 127.0.0.1, .2, ...:
// the footprint gives each daemon its own set, so that each server's
// request count is one daemon's.
func (b *bench) startServers(sets int) error {
	for i := range sets * b.o.sources {
		host := fmt.Sprintf("127.0.0.%d", i+1)
		port, err := freePort(host)
		if err != nil {
			return err
		}
		s := &server{addr: fmt.Sprintf("%s:%d", host, port), n: i}
		s.argv = []string{b.bin, "serve", "--listen", s.addr, "--local-stratum", "2", "--no-rate-limit", "--workers", "1"}
		if err := b.startServer(s); err != nil {
			return err
		}
		b.servers = append(b.servers, s)
	}
	for _, s := range b.servers {
		if err := waitNTP(s.addr, 10*time.Second); err != nil {
			return fmt.Errorf("server %s: %w", s.addr, err)
		}
	}
	return nil
}

func (b *bench) startServer(s *server) error {
	p, err := startProc(b.dir, fmt.Sprintf("serve%d", s.n+1), s.argv)
	if err != nil {
		return err
	}
	s.p = p
	return nil
}

func (b *bench) stopAll() {
	for _, p := range b.procs {
		p.stop(5 * time.Second)
	}
	for _, s := range b.servers {
		if s.p != nil {
			s.p.stop(5 * time.Second)
		}
	}
}

// freePort is a UDP port free on host a moment ago.
func freePort(host string) (int, error) {
	c, err := net.ListenPacket("udp4", host+":0")
	if err != nil {
		return 0, fmt.Errorf("a port on %s: %w", host, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// waitNTP waits until addr answers a client request.
func waitNTP(addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		c, err := net.Dial("udp", addr)
		if err != nil {
			return err
		}
		req := make([]byte, 48)
		req[0] = 0x23
		_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
		_, last = c.Write(req)
		if last == nil {
			buf := make([]byte, 128)
			var n int
			n, last = c.Read(buf)
			if last == nil && n >= 48 {
				c.Close()
				return nil
			}
		}
		c.Close()
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no answer within %v: %v", limit, last)
}

// ntptoolConfig writes the daemon's configuration: the servers, with
// iburst, minpoll and maxpoll (0: the defaults), and the metrics endpoint
// on metricsAddr unless it is "".
func (b *bench) ntptoolConfig(poll int, servers []*server, metricsAddr string) (conf, sock string, err error) {
	sock = filepath.Join(b.dir, "ntptool.sock")
	var w strings.Builder
	// The same work as chronyd's by default: no audit journal (-journal
	// puts one in the run's directory, never the packaged path).
	journal := ""
	if b.o.journal {
		journal = filepath.Join(b.dir, "audit.jsonl")
	}
	fmt.Fprintf(&w, "driftfile = %q\n\n[control]\nsocket = %q\n\n[audit]\njournal = %q\n\n[hooks]\ndhcp_renew = \"off\"\n",
		filepath.Join(b.dir, "ntptool.drift"), sock, journal)
	if metricsAddr != "" {
		fmt.Fprintf(&w, "\n[metrics]\nlisten = %q\n", metricsAddr)
	}
	for _, s := range servers {
		host, port, _ := net.SplitHostPort(s.addr)
		fmt.Fprintf(&w, "\n[[source]]\nserver = %q\nport = %s\niburst = true\n", host, port)
		if poll != 0 {
			fmt.Fprintf(&w, "minpoll = %d\nmaxpoll = %d\n", poll, poll)
		}
	}
	conf = filepath.Join(b.dir, "ntptool.toml")
	return conf, sock, os.WriteFile(conf, []byte(w.String()), 0o600)
}

// startNtptool starts `ntptool run --no-clock-control` without
// CAP_SYS_TIME.
func (b *bench) startNtptool(conf string) (*proc, error) {
	p, err := startProc(b.dir, "ntptool-run", peers.NoCap(b.bin, "run", "--config", conf, "--no-clock-control"), b.o.env...)
	if err == nil {
		b.procs = append(b.procs, p)
	}
	return p, err
}

func (b *bench) chronyConfig(servers []*server) (conf, sock string, err error) {
	sock = filepath.Join(b.dir, "chronyd.sock")
	lines := []string{
		"port 0", // client only, as ntptool run without [server]
		"cmdport 0",
		"bindcmdaddress " + sock,
		"pidfile " + filepath.Join(b.dir, "chronyd.pid"),
		"driftfile " + filepath.Join(b.dir, "chronyd.drift"),
	}
	for _, s := range servers {
		host, port, _ := net.SplitHostPort(s.addr)
		lines = append(lines, fmt.Sprintf("server %s port %s iburst", host, port))
	}
	conf = filepath.Join(b.dir, "chrony.conf")
	return conf, sock, os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

// footprint measures ntptool run against chronyd -x, both started
// afresh (their files in their own directory), and stops them.
func (b *bench) footprint(ctx context.Context, run int) (report, error) {
	dir := b.dir
	b.dir = filepath.Join(dir, fmt.Sprintf("run%d", run+1))
	defer func() {
		for _, p := range b.procs {
			p.stop(5 * time.Second)
		}
		b.procs, b.dir = nil, dir
	}()
	if err := os.Mkdir(b.dir, 0o700); err != nil {
		return report{}, err
	}
	nServers, cServers := b.servers[:b.o.sources], b.servers[b.o.sources:]
	nconf, nsock, err := b.ntptoolConfig(0, nServers, "")
	if err != nil {
		return report{}, err
	}
	cconf, csock, err := b.chronyConfig(cServers)
	if err != nil {
		return report{}, err
	}
	chronyd := filepath.Join(b.o.root, "usr/sbin/chronyd")
	cp, err := startProc(b.dir, "chronyd", peers.NoCap(chronyd, "-x", "-d", "-u", "root", "-f", cconf))
	if err != nil {
		return report{}, err
	}
	b.procs = append(b.procs, cp)
	np, err := b.startNtptool(nconf)
	if err != nil {
		return report{}, err
	}
	fmt.Fprintf(os.Stderr, "ntptool run pid %d (environment %q) polls %s; chronyd -x pid %d polls %s; warm-up %v, window %v\n",
		np.pid(), b.o.env.String(), serverList(nServers), cp.pid(), serverList(cServers), b.o.warmup, b.o.window)
	if err := sleepCtx(ctx, b.o.warmup); err != nil {
		return report{}, err
	}
	n0, err1 := readUsage(np.pid())
	c0, err2 := readUsage(cp.pid())
	nr0, err3 := requests(ctx, nServers)
	cr0, err4 := requests(ctx, cServers)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return report{}, fmt.Errorf("at the window's start (did a daemon exit? see its log in %s): %w", b.dir, err)
	}
	if err := sleepCtx(ctx, b.o.window); err != nil {
		return report{}, err
	}
	n1, err1 := readUsage(np.pid())
	c1, err2 := readUsage(cp.pid())
	nr1, err3 := requests(ctx, nServers)
	cr1, err4 := requests(ctx, cServers)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return report{}, fmt.Errorf("at the window's end: %w", err)
	}
	// Both must have synchronised for the comparison to mean anything
	// (asked after the window: a query wakes the daemon).
	nstate := ntptoolState(ctx, nsock)
	cstate := chronyState(ctx, b.o.root, csock)
	size, static, err := binaryInfo(b.bin)
	if err != nil {
		return report{}, err
	}
	r := report{window: b.o.window, ntptool: n1.sub(n0), chronyd: c1.sub(c0), nStart: n0, cStart: c0,
		nState: nstate, cState: cstate, binSize: size, static: static, nReq: nr1 - nr0, cReq: cr1 - cr0}
	return r, nil
}

func serverList(servers []*server) string {
	var a []string
	for _, s := range servers {
		a = append(a, s.addr)
	}
	return strings.Join(a, ", ")
}

// ntptoolState is the daemon's sync state and source count, from its
// control socket.
func ntptoolState(ctx context.Context, sock string) string {
	r, err := control.Query(ctx, sock, control.CommandSnapshot)
	if err != nil {
		return "error: " + err.Error()
	}
	if r.Status == nil {
		return "no status"
	}
	reach, tally := 0, ""
	for _, s := range r.Sources {
		if s.Reach != 0 {
			reach++
		}
		tally += s.Tally
	}
	return fmt.Sprintf("%s, %d/%d sources reachable [%s]", r.Status.SyncState, reach, len(r.Sources), tally)
}

// chronyState is chronyc's view of chronyd: its leap status and the
// sources it reaches.
func chronyState(ctx context.Context, root, sock string) string {
	chronyc := filepath.Join(root, "usr/bin/chronyc")
	out, err := exec.CommandContext(ctx, chronyc, "-h", sock, "-c", "tracking").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("chronyc tracking: %v: %s", err, strings.TrimSpace(string(out)))
	}
	// CSV: refid, name, stratum, ..., leap status last.
	f := strings.Split(strings.TrimSpace(string(out)), ",")
	state := "leap " + f[len(f)-1]
	if len(f) > 2 {
		state = fmt.Sprintf("reference %s stratum %s, %s", f[1], f[2], state)
	}
	out, err = exec.CommandContext(ctx, chronyc, "-h", sock, "-c", "sources").CombinedOutput()
	if err == nil {
		reach := 0
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		for _, l := range lines {
			if f := strings.Split(l, ","); len(f) > 5 && f[5] != "0" {
				reach++
			}
		}
		state += fmt.Sprintf(", %d/%d sources reachable", reach, len(lines))
	}
	return state
}

// binaryInfo is the binary's size and whether it is static (no
// interpreter, no shared libraries).
func binaryInfo(path string) (int64, bool, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, false, err
	}
	f, err := elf.Open(path)
	if err != nil {
		return st.Size(), false, err
	}
	defer f.Close()
	static := true
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			static = false
		}
	}
	return st.Size(), static, nil
}

// report is the footprint's outcome.
type report struct {
	window           time.Duration
	ntptool, chronyd usage // over the window
	nStart, cStart   usage // at its start: the start-up's cost
	nState, cState   string
	binSize          int64
	static           bool
	nReq, cReq       int64 // requests the servers received in the window
}

func (r report) print(w io.Writer) {
	fmt.Fprintf(w, "\nntptool run --no-clock-control vs chronyd -x, 4 loopback sources each, idle window of %v\n", r.window)
	fmt.Fprintf(w, "  ntptool: %s\n  chronyd: %s\n\n", r.nState, r.cState)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "metric\tntptool\tchronyd\tratio\tgoal\tverdict\t")
	row := func(name string, n, c float64, format, goal string, ok bool) {
		ratio := "-"
		if c > 0 {
			ratio = fmt.Sprintf("%.2f", n/c)
		}
		v := "ok"
		if !ok {
			v = "MISSED"
		}
		fmt.Fprintf(tw, "%s\t"+format+"\t"+format+"\t%s\t%s\t%s\t\n", name, n, c, ratio, goal, v)
	}
	n, c := r.ntptool, r.chronyd
	row("RSS (MiB)", float64(n.RSSKiB)/1024, float64(c.RSSKiB)/1024, "%.2f", "≤ 10", n.RSSKiB <= goalRSSKiB)
	row("anonymous RSS (MiB)", float64(n.AnonKiB)/1024, float64(c.AnonKiB)/1024, "%.2f", "-", true)
	row("peak RSS (MiB)", float64(n.HWMKiB)/1024, float64(c.HWMKiB)/1024, "%.2f", "≤ 10", n.HWMKiB <= goalRSSKiB)
	row("CPU (ms)", n.CPU.Seconds()*1e3, c.CPU.Seconds()*1e3, "%.2f", "≤ chronyd", n.CPU <= c.CPU)
	row("wake-ups", float64(n.Voluntary), float64(c.Voluntary), "%.0f", "≤ chronyd", n.Voluntary <= c.Voluntary)
	row("requests sent", float64(r.nReq), float64(r.cReq), "%.0f", "-", true)
	if r.nReq > 0 && r.cReq > 0 {
		row("wake-ups per request", float64(n.Voluntary)/float64(r.nReq), float64(c.Voluntary)/float64(r.cReq), "%.1f", "-", true)
		row("CPU per request (ms)", n.CPU.Seconds()*1e3/float64(r.nReq), c.CPU.Seconds()*1e3/float64(r.cReq), "%.3f", "-", true)
	}
	row("involuntary switches", float64(n.Involuntary), float64(c.Involuntary), "%.0f", "-", true)
	row("threads", float64(n.Threads), float64(c.Threads), "%.0f", "-", true)
	row("open fds", float64(n.FDs), float64(c.FDs), "%.0f", "-", true)
	row("start-up CPU (ms)", r.nStart.CPU.Seconds()*1e3, r.cStart.CPU.Seconds()*1e3, "%.2f", "-", true)
	row("start-up wake-ups", float64(r.nStart.Voluntary), float64(r.cStart.Voluntary), "%.0f", "-", true)
	binOK := r.binSize <= goalBinaryMiB<<20 && r.static
	fmt.Fprintf(tw, "binary (MiB)\t%.2f\t-\t-\t≤ 12, static\t%s\t\n", float64(r.binSize)/(1<<20), map[bool]string{true: "ok", false: "MISSED"}[binOK])
	tw.Flush()
	fmt.Fprintf(w, "\nwake-ups = voluntary context switches summed over threads; CPU from /proc/PID/task/*/schedstat; the start-up rows are from exec to the window's start\n")
}

// printMedians is the table of the runs' medians, and every run's
// wake-ups and CPU.
func printMedians(w io.Writer, rs []report) {
	med := func(f func(report) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	all := func(f func(report) float64, format string) string {
		var a []string
		for _, r := range rs {
			a = append(a, fmt.Sprintf(format, f(r)))
		}
		return strings.Join(a, " ")
	}
	fmt.Fprintf(w, "\nmedians of %d runs\n", len(rs))
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "metric\tntptool\tchronyd\tratio\tntptool's runs\tchronyd's runs\t")
	for _, m := range []struct {
		name, format string
		n, c         func(report) float64
	}{
		{"RSS (MiB)", "%.2f", func(r report) float64 { return float64(r.ntptool.RSSKiB) / 1024 }, func(r report) float64 { return float64(r.chronyd.RSSKiB) / 1024 }},
		{"anonymous RSS (MiB)", "%.2f", func(r report) float64 { return float64(r.ntptool.AnonKiB) / 1024 }, func(r report) float64 { return float64(r.chronyd.AnonKiB) / 1024 }},
		{"CPU (ms)", "%.2f", func(r report) float64 { return r.ntptool.CPU.Seconds() * 1e3 }, func(r report) float64 { return r.chronyd.CPU.Seconds() * 1e3 }},
		{"wake-ups", "%.0f", func(r report) float64 { return float64(r.ntptool.Voluntary) }, func(r report) float64 { return float64(r.chronyd.Voluntary) }},
		{"requests", "%.0f", func(r report) float64 { return float64(r.nReq) }, func(r report) float64 { return float64(r.cReq) }},
	} {
		n, c := med(m.n), med(m.c)
		ratio := "-"
		if c > 0 {
			ratio = fmt.Sprintf("%.2f", n/c)
		}
		fmt.Fprintf(tw, "%s\t"+m.format+"\t"+m.format+"\t%s\t%s\t%s\t\n", m.name, n, c, ratio, all(m.n, m.format), all(m.c, m.format))
	}
	tw.Flush()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("budget exhausted: %w", ctx.Err())
	}
}
