package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// sample is one row of the soak's figures.
type sample struct {
	at         time.Duration
	u          usage
	goroutines int // -1: not read (-soak-metrics=false)
	state      string
	up         int // servers running
}

// freeTCPAddr is a loopback TCP address nothing listens on (for a moment).
func freeTCPAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// goroutines reads go_goroutines from the daemon's /metrics at addr.
func goroutines(ctx context.Context, addr string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no go_goroutines in /metrics (%s)", resp.Status)
}

// soakRun runs the daemon alone against flapping servers and prints its
// figures every o.every.
func (b *bench) soakRun(ctx context.Context) error {
	metricsAddr := ""
	if b.o.soakMetrics {
		addr, err := freeTCPAddr()
		if err != nil {
			return err
		}
		metricsAddr = addr
	}
	conf, sock, err := b.ntptoolConfig(b.o.soakPoll, b.servers, metricsAddr)
	if err != nil {
		return err
	}
	np, err := b.startNtptool(conf)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "soak of %v: ntptool run pid %d against %s (minpoll = maxpoll = %d); a server flaps every %v\n",
		b.o.soak, np.pid(), serverList(b.servers), b.o.soakPoll, b.o.flap)
	start := time.Now()
	// The first figures once the daemon answers on its control socket.
	for ntptoolState(ctx, sock) == "" || strings.HasPrefix(ntptoolState(ctx, sock), "error") {
		if np.exited() || time.Since(start) > 10*time.Second {
			return fmt.Errorf("the daemon did not answer on %s within 10 s (log: %s)", sock, np.log)
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
	flap := time.NewTicker(b.o.flap)
	defer flap.Stop()
	report := time.NewTicker(b.o.every)
	defer report.Stop()
	end := time.NewTimer(b.o.soak)
	defer end.Stop()
	var samples []sample
	take := func() error {
		u, err := readUsage(np.pid())
		if err != nil {
			return fmt.Errorf("the daemon is gone (log: %s): %w", np.log, err)
		}
		state := ntptoolState(ctx, sock)
		if len(state) > 60 {
			state = state[:60] + "…"
		}
		s := sample{at: time.Since(start).Round(time.Second), u: u, state: state, up: b.running(), goroutines: -1}
		if metricsAddr != "" {
			g, err := goroutines(ctx, metricsAddr)
			if err != nil {
				return fmt.Errorf("the daemon's goroutines (log: %s): %w", np.log, err)
			}
			s.goroutines = g
		}
		samples = append(samples, s)
		fmt.Fprintf(os.Stderr, "%6v  RSS %6d KiB  threads %2d  goroutines %3d  fds %2d  wake-ups %7d  CPU %7.3f s  servers up %d  %s\n",
			s.at, u.RSSKiB, u.Threads, s.goroutines, u.FDs, u.Voluntary, u.CPU.Seconds(), s.up, s.state)
		return nil
	}
	if err := take(); err != nil {
		return err
	}
	down := -1 // the server stopped last; -2: all of them
	flaps := 0
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("budget exhausted: %w", ctx.Err())
		case <-end.C:
			// The end often coincides with a report's sample: a second
			// one right after it would count the daemon's side of that
			// sample's status connection, not yet closed, as a leak.
			if last := samples[len(samples)-1].at; time.Since(start) >= last+time.Second {
				if err := take(); err != nil {
					return err
				}
			}
			return printSoak(os.Stdout, samples, flaps)
		case <-report.C:
			if err := take(); err != nil {
				return err
			}
		case <-flap.C:
			flaps++
			var err error
			down, err = b.flapOnce(down, flaps)
			if err != nil {
				return err
			}
			if np.exited() {
				return fmt.Errorf("the daemon exited (log: %s)", np.log)
			}
		}
	}
}

// flapOnce brings back what was down and stops the next server; every
// sixth flap (the third, ninth, ...) it stops all four instead, for two
// periods, long enough at short polls for the sources to turn
// unreachable and the daemon to hold over. It returns what is down now
// (-2: all).
func (b *bench) flapOnce(down, flaps int) (int, error) {
	switch flaps % 6 {
	case 3:
		for _, s := range b.servers {
			s.p.stop(5 * time.Second)
		}
		return -2, nil
	case 4:
		return -2, nil // still all down
	}
	for i, s := range b.servers {
		if (down == -2 || down == i) && (s.p == nil || s.p.exited()) {
			if err := b.startServer(s); err != nil {
				return down, err
			}
		}
	}
	next := flaps % len(b.servers)
	b.servers[next].p.stop(5 * time.Second)
	return next, nil
}

func (b *bench) running() int {
	n := 0
	for _, s := range b.servers {
		if s.p != nil && !s.p.exited() {
			n++
		}
	}
	return n
}

// trend compares the last third of the samples with the rest: growth is
// the last third's maximum above the earlier maximum (the first sample,
// before the start-up settled, left out).
type trend struct {
	name        string
	early, late int64
	slack       int64
	unit        string
	grows       bool
}

func trends(samples []sample) []trend {
	if len(samples) < 4 {
		return nil
	}
	s := samples[1:]
	cut := len(s) * 2 / 3
	peak := func(from, to int, f func(sample) int64) int64 {
		m := int64(0)
		for _, x := range s[from:to] {
			m = max(m, f(x))
		}
		return m
	}
	var out []trend
	for _, m := range []struct {
		name  string
		unit  string
		slack int64
		f     func(sample) int64
	}{
		{"RSS", "KiB", 512, func(x sample) int64 { return x.u.RSSKiB }},
		{"threads", "", 1, func(x sample) int64 { return int64(x.u.Threads) }},
		// The scrape's own and a status connection's may be running.
		{"goroutines", "", 2, func(x sample) int64 { return int64(x.goroutines) }},
		{"open fds", "", 0, func(x sample) int64 { return int64(x.u.FDs) }},
	} {
		if m.name == "goroutines" && s[0].goroutines < 0 {
			continue
		}
		t := trend{name: m.name, unit: m.unit, slack: m.slack, early: peak(0, cut, m.f), late: peak(cut, len(s), m.f)}
		t.grows = t.late > t.early+m.slack
		out = append(out, t)
	}
	return out
}

func printSoak(w io.Writer, samples []sample, flaps int) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "time\tRSS (KiB)\tpeak RSS (KiB)\tthreads\tgoroutines\topen fds\twake-ups\tCPU (s)\tservers up\tdaemon\t")
	for _, s := range samples {
		fmt.Fprintf(tw, "%v\t%d\t%d\t%d\t%d\t%d\t%d\t%.3f\t%d\t%s\t\n", s.at, s.u.RSSKiB, s.u.HWMKiB, s.u.Threads, s.goroutines, s.u.FDs, s.u.Voluntary, s.u.CPU.Seconds(), s.up, s.state)
	}
	tw.Flush()
	ts := trends(samples)
	if ts == nil {
		fmt.Fprintln(w, "\ntoo few samples for a trend (run longer than 3 × -every)")
		return nil
	}
	fmt.Fprintf(w, "\n%d flaps. Growth: the last third's maximum against the earlier maximum (first sample left out):\n", flaps)
	failed := false
	for _, t := range ts {
		v := "no growth"
		if t.grows {
			v, failed = "GROWS", true
		}
		fmt.Fprintf(w, "  %-9s %6d → %6d %s (slack %d): %s\n", t.name, t.early, t.late, t.unit, t.slack, v)
	}
	if failed {
		return fmt.Errorf("soak: growth found")
	}
	fmt.Fprintln(w, "soak: pass")
	return nil
}
