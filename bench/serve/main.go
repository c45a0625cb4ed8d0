// Command serve is the server benchmark behind `make bench-serve`: it
// measures, in one run and under the same conditions, the highest request
// rate each NTP server sustains with under 1 % loss, and its replies per
// server CPU-second, for `ntptool serve`, `chronyd -x` and NTPsec `ntpd`.
//
// Set-up (PEERS.md, "Load"): two network namespaces made for the run,
// joined by a veth pair; the server runs in one on port 123 pinned to one
// CPU, this generator in the other pinned to the other CPU. The generator
// (gen.go) offers a paced rate from N sockets and counts valid replies
// (origin timestamp = one of its requests, each counted once). The offered
// rate ramps up by ×1.3 until the loss reaches 1 % (or the generator cannot
// offer more), then a bisection refines the limit. Server CPU time comes
// from /proc/PID/stat. Everything is bounded: each step lasts -step, the
// whole run -budget; servers are killed by PID and the namespaces deleted.
//
// Usage: go run ./bench/serve -ntptool bin/ntptool
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ntptool/ntptool/internal/peers"
)

type options struct {
	ntptool   string
	root      string
	servers   string
	step      time.Duration
	grace     time.Duration
	budget    time.Duration
	senders   int
	startRate float64
	maxRate   float64
	refine    int
	serverCPU int
	genCPU    int
	workers   int
	txChunk   int
}

type result struct {
	name    string
	best    stepResult
	found   bool
	limit   string // what stopped the ramp
	steps   []stepResult
	rssIdle int64
	rssPeak int64
}

func main() {
	var o options
	flag.StringVar(&o.ntptool, "ntptool", "bin/ntptool", "ntptool binary to benchmark")
	flag.StringVar(&o.root, "peers", os.Getenv("NTPTOOL_PEERS"), "peers root (scripts/peers.sh); default $NTPTOOL_PEERS or .cache/peers/root")
	flag.StringVar(&o.servers, "servers", "ntptool,chronyd,ntpd", "servers to measure, comma-separated")
	flag.DurationVar(&o.step, "step", 2*time.Second, "duration of each load step")
	flag.DurationVar(&o.grace, "grace", 200*time.Millisecond, "wait for late replies after each step")
	flag.DurationVar(&o.budget, "budget", 170*time.Second, "bound on the whole run")
	flag.IntVar(&o.senders, "senders", 8, "generator sockets (source ports)")
	flag.Float64Var(&o.startRate, "start", 50000, "first offered rate, requests/s")
	flag.Float64Var(&o.maxRate, "max", 2e6, "highest offered rate, requests/s")
	flag.IntVar(&o.refine, "refine", 3, "bisection steps after the ramp")
	flag.IntVar(&o.serverCPU, "server-cpu", 0, "CPU the server is pinned to")
	flag.IntVar(&o.genCPU, "gen-cpu", 1, "CPU the generator is pinned to")
	flag.IntVar(&o.workers, "workers", 0, "ntptool serve --workers (0: one per CPU it may use)")
	flag.IntVar(&o.txChunk, "tx-chunk", 0, "ntptool serve --tx-chunk (0: its default)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench-serve:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (network namespaces, port 123)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.budget)
	defer cancel()
	r := &peers.Runner{}
	defer r.Close()
	if o.root == "" {
		o.root = peers.Root(r)
	}
	bin, err := filepath.Abs(o.ntptool)
	if err != nil {
		return err
	}
	// Pin every thread of this process (the generator) to its CPU; threads
	// made later inherit it.
	if out, err := exec.Command("taskset", "-a", "-cp", strconv.Itoa(o.genCPU), strconv.Itoa(os.Getpid())).CombinedOutput(); err != nil {
		return fmt.Errorf("taskset: %v: %s", err, out)
	}
	runtime.GOMAXPROCS(1)

	if idle := idleFraction(500 * time.Millisecond); idle < 0.8 {
		fmt.Fprintf(os.Stderr, "WARNING: the machine is only %.0f %% idle before the run: other processes compete for the CPUs, figures will be low and noisy\n", 100*idle)
	}
	srvNS := peers.NewNetns(r)
	cliNS := peers.NewNetns(r)
	veth := peers.NewVeth(r, srvNS, cliNS)
	target := veth.AddrA + ":123"
	fmt.Fprintf(os.Stderr, "server %s in netns %s (CPU %d), generator in %s (CPU %d), %d sockets, steps of %v\n",
		target, srvNS.Name, o.serverCPU, cliNS.Name, o.genCPU, o.senders, o.step)

	socks := make([]*genSock, o.senders)
	for i := range socks {
		if socks[i], err = newGenSock(cliNS, i+1, target); err != nil {
			return err
		}
		defer socks[i].conn.Close()
	}

	var results []result
	var stepID uint64
	for _, name := range strings.Split(o.servers, ",") {
		if ctx.Err() != nil {
			fmt.Fprintf(os.Stderr, "budget exhausted before %s\n", name)
			break
		}
		res, err := measure(ctx, r, o, name, bin, srvNS, cliNS, veth, target, socks, &stepID)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		results = append(results, res)
	}
	printTable(os.Stdout, o, results)
	return nil
}

// startServer starts one server in ns, pinned to o.serverCPU, and returns
// the command (its PID is the server's: ip netns exec, taskset and setpriv
// all exec).
func startServer(r *peers.Runner, o options, name, bin string, ns *peers.Netns, addr string) (*exec.Cmd, error) {
	dir := r.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	pin := []string{"taskset", "-c", strconv.Itoa(o.serverCPU)}
	var argv []string
	switch name {
	case "ntptool":
		argv = append(pin, peers.NoCap(bin, "serve", "--listen", addr,
			"--local-stratum", "2", "--no-rate-limit", "--workers", strconv.Itoa(o.workers), "--tx-chunk", strconv.Itoa(o.txChunk), "--log-level", "warn")...)
	case "chronyd":
		conf := filepath.Join(dir, "chrony.conf")
		host := strings.Split(addr, ":")[0]
		text := fmt.Sprintf("port 123\nbindaddress %s\nallow all\nlocal stratum 2\ncmdport 0\nbindcmdaddress %s\npidfile %s\n",
			host, filepath.Join(dir, "chronyd.sock"), filepath.Join(dir, "chronyd.pid"))
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			return nil, err
		}
		argv = append(pin, peers.NoCap(filepath.Join(o.root, "usr/sbin/chronyd"), "-x", "-d", "-u", "root", "-f", conf)...)
	case "ntpd":
		conf := filepath.Join(dir, "ntp.conf")
		text := "disable ntp\ndisable kernel\ntos orphan 2\ntos orphanwait 0\nunrestrict default limited\n"
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			return nil, err
		}
		argv = append(pin, peers.NoCap(filepath.Join(o.root, "usr/sbin/ntpd"), "-n", "-c", conf,
			"-p", filepath.Join(dir, "ntpd.pid"), "-l", filepath.Join(dir, "ntpd.log"))...)
	default:
		return nil, fmt.Errorf("unknown server %q (want ntptool, chronyd or ntpd)", name)
	}
	cmd := ns.Command(context.Background(), argv[0], argv[1:]...)
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	r.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	return cmd, nil
}

func measure(ctx context.Context, r *peers.Runner, o options, name, bin string, srvNS, cliNS *peers.Netns, veth *peers.Veth, target string,
	socks []*genSock, stepID *uint64) (result, error) {
	res := result{name: name}
	cmd, err := startServer(r, o, name, bin, srvNS, target)
	if err != nil {
		return res, err
	}
	defer func() { _ = cmd.Process.Kill() }() // by PID; the cleanup reaps it
	peers.WaitNTP(r, cliNS, target)
	pid := cmd.Process.Pid
	res.rssIdle, _ = peers.RSSBytes(pid)

	do := func(rate float64) stepResult {
		*stepID++
		srv0, cli0 := udpRcvbufErrors(srvNS), udpRcvbufErrors(cliNS)
		cpu0, _ := peers.CPUSeconds(pid)
		s := runStep(socks, *stepID, rate, o.step, o.grace)
		cpu1, _ := peers.CPUSeconds(pid)
		s.cpu = cpu1 - cpu0
		s.srvDrops, s.cliDrops = udpRcvbufErrors(srvNS)-srv0, udpRcvbufErrors(cliNS)-cli0
		if rss, err := peers.RSSBytes(pid); err == nil {
			res.rssPeak = max(res.rssPeak, rss)
		}
		res.steps = append(res.steps, s)
		fmt.Fprintf(os.Stderr, "  %-8s offered %8.0f/s sent %8.0f/s replies %8.0f/s loss %6.2f%% server CPU %.2fs; socket-buffer drops: server %d, generator %d; bad replies %d%s\n",
			name, s.offered, s.rate, s.replied, 100*s.loss, s.cpu, s.srvDrops, s.cliDrops, s.bad, map[bool]string{true: " (generator-limited)"}[s.genLag])
		return s
	}
	ok := func(s stepResult) bool { return s.loss < 0.01 }
	do(o.startRate / 2) // warm-up
	rate := o.startRate
	var bad float64
	lags := 0
	for rate <= o.maxRate && ctx.Err() == nil {
		s := do(rate)
		if s.genLag {
			// The generator fell behind (a competing process, a stall):
			// retry once at the same rate before calling it the limit.
			if lags++; lags < 2 {
				continue
			}
			res.limit = "generator"
			if ok(s) && s.replied > res.best.replied {
				res.best, res.found = s, true
			}
			break
		}
		lags = 0
		if !ok(s) {
			bad = rate
			res.limit = "loss ≥ 1 %"
			break
		}
		res.best, res.found = s, true
		rate *= 1.3
	}
	if bad > 0 {
		lo := bad / 1.3
		if res.found {
			lo = res.best.offered
		}
		hi := bad
		for i := 0; i < o.refine && ctx.Err() == nil; i++ {
			mid := (lo + hi) / 2
			s := do(mid)
			if ok(s) && !s.genLag {
				res.best, res.found, lo = s, true, mid
			} else {
				hi = mid
			}
		}
	}
	if res.limit == "" {
		res.limit = "max rate"
	}
	return res, nil
}

func printTable(w *os.File, o options, results []result) {
	var chrony, ntpsec *result
	for i := range results {
		switch results[i].name {
		case "chronyd":
			chrony = &results[i]
		case "ntpd":
			ntpsec = &results[i]
		}
	}
	perCPU := func(r *result) float64 {
		if r == nil || !r.found || r.best.cpu <= 0 {
			return 0
		}
		return float64(r.best.valid) / r.best.cpu
	}
	ratio := func(a, b float64) string {
		if a == 0 || b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f×", a/b)
	}
	fmt.Fprintf(w, "\nbench-serve: veth between two namespaces, server pinned to CPU %d, generator to CPU %d, %d source ports, %v steps, loss limit 1 %%\n\n",
		o.serverCPU, o.genCPU, o.senders, o.step)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\tsustained replies/s\tloss\tserver CPU-s\treplies/CPU-s\trate vs chronyd\tCPU-eff vs chronyd\trate vs NTPsec\tCPU-eff vs NTPsec\tRSS idle→peak MB\tramp stopped by\t")
	for i := range results {
		r := &results[i]
		rate := 0.0
		if r.found {
			rate = r.best.replied
		}
		var cr, nr float64
		if chrony != nil && chrony.found {
			cr = chrony.best.replied
		}
		if ntpsec != nil && ntpsec.found {
			nr = ntpsec.best.replied
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f%%\t%.2f\t%.0f\t%s\t%s\t%s\t%s\t%.1f→%.1f\t%s\t\n", r.name, rate, 100*r.best.loss, r.best.cpu, perCPU(r),
			ratio(rate, cr), ratio(perCPU(r), perCPU(chrony)), ratio(rate, nr), ratio(perCPU(r), perCPU(ntpsec)),
			float64(r.rssIdle)/1e6, float64(r.rssPeak)/1e6, r.limit)
	}
	tw.Flush()
}

// udpRcvbufErrors reads the UDP RcvbufErrors counter of a namespace: the
// datagrams its sockets dropped because their receive buffer was full.
func udpRcvbufErrors(ns *peers.Netns) int64 {
	out, err := ns.Command(context.Background(), "cat", "/proc/net/snmp").Output()
	if err != nil {
		return 0
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		rest, ok := strings.CutPrefix(line, "Udp: ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "RcvbufErrors" && i < len(f) {
				v, _ := strconv.ParseInt(f[i], 10, 64)
				return v
			}
		}
	}
	return 0
}

// idleFraction samples /proc/stat over d: the fraction of CPU time idle.
func idleFraction(d time.Duration) float64 {
	read := func() (idle, total uint64) {
		b, err := os.ReadFile("/proc/stat")
		if err != nil {
			return 0, 0
		}
		line, _, _ := strings.Cut(string(b), "\n")
		for i, f := range strings.Fields(line)[1:] {
			v, _ := strconv.ParseUint(f, 10, 64)
			total += v
			if i == 3 || i == 4 { // idle, iowait
				idle += v
			}
		}
		return idle, total
	}
	i0, t0 := read()
	time.Sleep(d)
	i1, t1 := read()
	if t1 == t0 {
		return 1
	}
	return float64(i1-i0) / float64(t1-t0)
}
