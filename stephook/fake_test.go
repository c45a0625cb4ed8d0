package stephook

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// fakeSystem is a system in memory: addresses, processes and files the
// test sets up, and hooks for what signals, commands and restarts do.
type fakeSystem struct {
	mu      sync.Mutex
	clock   time.Time
	as      []Addr
	procs   []Process
	files   map[string][]byte
	dead    map[int]bool
	busy    map[int]bool // processes that hold a DHCP socket
	calls   []string     // what was done, in order
	nextPID int

	renewTo time.Duration // what networkd and NetworkManager renew to
	// advance makes sleep move the clock instead of waiting for the
	// context; exitAtOnce makes spawned processes exit at once.
	advance, exitAtOnce bool
	onSignal            func(f *fakeSystem, pid int, sig syscall.Signal) error
	onSleep             func(f *fakeSystem) // what happens while a renewer polls
	onRun               func(f *fakeSystem, argv []string) error
	onSpawn             func(f *fakeSystem, argv []string) error
}

func newFake() *fakeSystem {
	return &fakeSystem{clock: utc("2026-12-01T09:00:00Z"), files: map[string][]byte{}, dead: map[int]bool{}, nextPID: 5000}
}

func (f *fakeSystem) record(s string) { f.calls = append(f.calls, s) }

func (f *fakeSystem) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.clock
}

// sleep waits for the context: in these tests nothing changes while a
// renewer polls, so a poll that does not see its result times out.
func (f *fakeSystem) sleep(ctx context.Context, d time.Duration) error {
	if f.onSleep != nil {
		f.mu.Lock()
		f.onSleep(f)
		f.mu.Unlock()
		return ctx.Err()
	}
	if f.advance {
		f.mu.Lock()
		f.clock = f.clock.Add(d)
		f.mu.Unlock()
		return ctx.Err()
	}
	<-ctx.Done()
	return ctx.Err()
}

func (f *fakeSystem) addrs() ([]Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.as), nil
}

func (f *fakeSystem) setLifetimes(a Addr, valid, preferred time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("lifetimes " + a.Prefix.String() + " " + valid.String() + " " + preferred.String())
	for i := range f.as {
		if f.as[i].Prefix == a.Prefix && f.as[i].Interface == a.Interface {
			f.as[i].Valid, f.as[i].Preferred = valid, preferred
			return nil
		}
	}
	return errors.New("no such address")
}

// setValid changes an address's valid_lft (what a client's renewal does).
func (f *fakeSystem) setValid(prefix string, valid time.Duration) {
	for i := range f.as {
		if f.as[i].Prefix.String() == prefix {
			f.as[i].Valid, f.as[i].Preferred = valid, valid
		}
	}
}

func (f *fakeSystem) processes() ([]Process, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Process
	for _, p := range f.procs {
		if !f.dead[p.PID] {
			out = append(out, p)
		}
	}
	return out, nil
}

func (f *fakeSystem) alive(pid int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return pid > 0 && !f.dead[pid] && slices.ContainsFunc(f.procs, func(p Process) bool { return p.PID == pid })
}

// awaitExit: the fake's processes are polled (alive).
func (f *fakeSystem) awaitExit(context.Context, int) error { return errors.ErrUnsupported }

func (f *fakeSystem) signal(pid int, sig syscall.Signal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("signal " + sig.String())
	if f.onSignal != nil {
		return f.onSignal(f, pid, sig)
	}
	if sig == syscall.SIGTERM || sig == syscall.SIGKILL {
		f.dead[pid] = true
	}
	return nil
}

func (f *fakeSystem) dhcpSocket(pid int) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.busy[pid], nil
}

func (f *fakeSystem) readFile(path string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.files[path]
	if !ok {
		return nil, errors.New("no such file")
	}
	return slices.Clone(b), nil
}

func (f *fakeSystem) readDir(dir string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	for p := range f.files {
		if rest, ok := strings.CutPrefix(p, dir+"/"); ok && !strings.Contains(rest, "/") {
			names = append(names, rest)
		}
	}
	slices.Sort(names)
	return names, nil
}

func (f *fakeSystem) replaceFile(path string, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("replace " + path)
	f.files[path] = slices.Clone(data)
	return nil
}

func (f *fakeSystem) run(ctx context.Context, argv []string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("run " + strings.Join(argv, " "))
	if f.onRun != nil {
		return nil, f.onRun(f, argv)
	}
	return nil, nil
}

func (f *fakeSystem) spawn(argv, env []string, dir string) (int, string, <-chan struct{}, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("spawn " + strings.Join(argv, " "))
	if f.onSpawn != nil {
		if err := f.onSpawn(f, argv); err != nil {
			return 0, "", nil, err
		}
	}
	f.nextPID++
	f.procs = append(f.procs, Process{PID: f.nextPID, Comm: filepath.Base(argv[0]), Argv: argv, Exe: argv[0]})
	exited := make(chan struct{})
	if f.exitAtOnce {
		close(exited)
	}
	return f.nextPID, "/nonexistent/ntptool-fake-output", exited, nil
}

func (f *fakeSystem) networkdRenew(ctx context.Context, ifindex int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("networkd RenewLink")
	f.renewAll()
	return nil
}

func (f *fakeSystem) nmDevice(ctx context.Context, iface string) (nmDevice, error) {
	return nmDevice{Path: "/org/freedesktop/NetworkManager/Devices/2", DHCP4: true}, nil
}

func (f *fakeSystem) nmReapply(ctx context.Context, device string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("nm Reapply " + device)
	f.renewAll()
	return nil
}

func (f *fakeSystem) renewAll() {
	for i := range f.as {
		if f.as[i].Dynamic() && f.renewTo > 0 {
			f.as[i].Valid, f.as[i].Preferred = f.renewTo, f.renewTo
		}
	}
}

func dynAddr(iface, prefix string, valid time.Duration) Addr {
	return Addr{Interface: iface, Index: 2, Prefix: netip.MustParsePrefix(prefix), Valid: valid, Preferred: valid}
}
