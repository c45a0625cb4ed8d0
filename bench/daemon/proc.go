package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a process this program started and stops, by its PID only.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// startProc starts argv with its output in dir/name.log, and env added
// to this process's environment.
func startProc(dir, name string, argv []string, env ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	return p, nil
}

// pid is the process's id (setpriv and ip netns exec exec, so it is the
// measured program's).
func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, and SIGKILL if it has not exited within grace;
// it returns once the process is reaped.
func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// usage is what the kernel says about a process: summed over its
// threads from /proc/PID/task/*.
type usage struct {
	// CPU is the time on a CPU (schedstat, ns resolution).
	CPU time.Duration
	// Voluntary and Involuntary context switches; the voluntary ones
	// are the wake-ups (each one a sleep that ended).
	Voluntary, Involuntary int64
	// RSSKiB and HWMKiB are the resident set now and its peak; AnonKiB
	// its anonymous part (heap, stacks, written data), the rest being
	// the pages of files mapped (the binary, libraries).
	RSSKiB, HWMKiB, AnonKiB int64
	// Threads and FDs open.
	Threads, FDs int
}

// readUsage reads pid's usage from /proc.
func readUsage(pid int) (usage, error) {
	var u usage
	base := fmt.Sprintf("/proc/%d", pid)
	tasks, err := os.ReadDir(base + "/task")
	if err != nil {
		return u, err
	}
	for _, t := range tasks {
		dir := base + "/task/" + t.Name()
		st, err := os.ReadFile(dir + "/status")
		if err != nil {
			continue // the thread exited meanwhile
		}
		u.Voluntary += statusField(st, "voluntary_ctxt_switches:")
		u.Involuntary += statusField(st, "nonvoluntary_ctxt_switches:")
		if ss, err := os.ReadFile(dir + "/schedstat"); err == nil {
			if f := strings.Fields(string(ss)); len(f) > 0 {
				ns, _ := strconv.ParseInt(f[0], 10, 64)
				u.CPU += time.Duration(ns)
			}
		}
		u.Threads++
	}
	st, err := os.ReadFile(base + "/status")
	if err != nil {
		return u, err
	}
	u.RSSKiB = statusField(st, "VmRSS:")
	u.HWMKiB = statusField(st, "VmHWM:")
	u.AnonKiB = statusField(st, "RssAnon:")
	fds, err := os.ReadDir(base + "/fd")
	if err != nil {
		return u, err
	}
	u.FDs = len(fds)
	return u, nil
}

// statusField is the first number after key in a /proc status file.
func statusField(st []byte, key string) int64 {
	for _, line := range strings.Split(string(st), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// sub is the usage accumulated between b and u (RSS figures are u's).
func (u usage) sub(b usage) usage {
	u.CPU -= b.CPU
	u.Voluntary -= b.Voluntary
	u.Involuntary -= b.Involuntary
	return u
}

// requests sums the requests the servers have received: each is sent
// SIGUSR1, which makes `ntptool serve` log its statistics, and the new
// line is read from its log.
func requests(ctx context.Context, servers []*server) (int64, error) {
	var sum int64
	for _, s := range servers {
		before := statLines(s.p.log)
		if err := s.p.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			return 0, err
		}
		for {
			lines := statLines(s.p.log)
			if len(lines) > len(before) {
				sum += lines[len(lines)-1]
				break
			}
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	return sum, nil
}

// statLines are the request counts of the statistics lines in a server's
// log, in order.
func statLines(path string) []int64 {
	data, _ := os.ReadFile(path)
	var out []int64
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.Contains(line, "statistics") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "requests="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				out = append(out, n)
			}
		}
	}
	return out
}
