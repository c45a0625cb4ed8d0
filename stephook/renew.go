package stephook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// job is one renewal: a client instance and the addresses it protects.
type job struct {
	c      *client
	ifaces []string
	addrs  []Addr // dynamic, non-SLAAC addresses the client manages
	// leases are the newest leases of the client's lease file per
	// interface and family, when it has one (dhclient).
	leases map[string]Lease
}

func leaseKey(iface string, family int) string { return iface + "/" + strconv.Itoa(family) }

// lease returns the lease that covers address a, if known.
func (j *job) lease(a Addr) *Lease {
	l, ok := j.leases[leaseKey(a.Interface, a.family())]
	if !ok || !leaseHas(l, a.Prefix.Addr()) {
		return nil
	}
	return &l
}

func leaseHas(l Lease, ip interface{ String() string }) bool {
	if l.Address.String() == ip.String() {
		return true
	}
	for _, la := range l.Addrs {
		if la.Address.String() == ip.String() {
			return true
		}
	}
	return false
}

// poller paces the polls of external processes and lifetimes: every
// 10 ms at first, then half as often again at each poll, up to every
// 100 ms. A renewal takes milliseconds on a fast host and seconds on a
// slow one (a guest under emulation, one CPU), where a 10 ms poll of the
// lease file and the addresses took a third of the CPU the DHCP client
// needed.
type poller struct{ d time.Duration }

const firstPoll, lastPoll = 10 * time.Millisecond, 100 * time.Millisecond

// sleep waits before the next poll (until ctx ends).
func (p *poller) sleep(ctx context.Context, s system) error {
	p.d = min(max(p.d*3/2, firstPoll), lastPoll)
	return s.sleep(ctx, p.d)
}

// renewJob renews one client and reports it. Before it returns, the
// addresses' new lifetimes are read back.
func (r *Runner) renewJob(ctx context.Context, j *job, dry bool) Result {
	res := Result{Hook: "renew", Name: j.c.name(), Client: j.c.kind, Interfaces: j.ifaces}
	start := r.sys.now()
	all, err := r.sys.addrs()
	read := r.sys.now() // when Before was read: it decays from there
	if err == nil {
		res.Before = lifetimesOf(all, j.addrs)
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	var action string
	switch j.c.kind {
	case DHClient:
		action, err = r.renewDHClient(ctx, j, dry)
	case DHCPCD:
		action, err = r.renewDHCPCD(ctx, j, dry)
	case UDHCPC:
		action, err = r.renewUDHCPC(j, dry)
	case Networkd:
		action, err = r.renewNetworkd(ctx, j, dry)
	case NetworkManager:
		action, err = r.renewNM(ctx, j, dry)
	}
	res.Action = action
	if dry {
		res.Outcome, res.Duration = DryRun, r.sys.now().Sub(start)
		return res
	}
	if err == nil {
		err = r.confirm(ctx, j, res.Before, read)
	}
	if all, aerr := r.sys.addrs(); aerr == nil {
		res.After = lifetimesOf(all, j.addrs)
	}
	res.Duration = r.sys.now().Sub(start)
	switch {
	case err == nil:
		res.Outcome = OK
	case ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded):
		res.Outcome, res.Err = TimedOut, err
	default:
		res.Outcome, res.Err = Failed, err
	}
	return res
}

// lifetimesOf reads the lifetimes of want's addresses from all; an address
// that is gone is left out.
func lifetimesOf(all, want []Addr) []Lifetimes {
	var out []Lifetimes
	for _, w := range want {
		if a, ok := findAddr(all, w.Interface, w.Prefix); ok {
			out = append(out, Lifetimes{a.Interface, a.Prefix, a.Valid, a.Preferred})
		}
	}
	return out
}

func findAddr(all []Addr, iface string, p interface{ String() string }) (Addr, bool) {
	for _, a := range all {
		if a.Interface == iface && a.Prefix.String() == p.String() {
			return a, true
		}
	}
	return Addr{}, false
}

// refreshed reports whether an address's lifetime was renewed, elapsed
// after before was read: it is a second or more above where it would have
// decayed to (before − elapsed), or within 2 s of the lease time. The
// kernel counts valid_lft in whole seconds, so without a renewal after +
// elapsed stays below before + 1 s; with one it passes that within about a
// second even when before was already the full lease (a renewal right
// after another: the post-step one after the pre-step one, udhcpc, whose
// lease time is not known here).
func refreshed(before, after Lifetimes, leaseTime, elapsed time.Duration) bool {
	switch {
	case after.Valid == Forever:
		return true
	case before.Valid != Forever && after.Valid+max(elapsed, 0) >= before.Valid+time.Second:
		return true
	}
	return leaseTime > 0 && after.Valid >= leaseTime-2*time.Second
}

// confirm waits (until ctx ends) for every protected address to show a
// renewed lifetime. An address that disappears is an error at once.
func (r *Runner) confirm(ctx context.Context, j *job, before []Lifetimes, read time.Time) error {
	if len(before) == 0 {
		return nil
	}
	var poll poller
	for {
		all, err := r.sys.addrs()
		if err != nil {
			return err
		}
		pending := 0
		for _, b := range before {
			a, ok := findAddr(all, b.Interface, b.Address)
			if !ok {
				return fmt.Errorf("address %s vanished from %s during the renewal", b.Address, b.Interface)
			}
			var leaseTime time.Duration
			if l := j.lease(a); l != nil {
				leaseTime = l.LeaseTime
			}
			if !refreshed(b, Lifetimes{a.Interface, a.Prefix, a.Valid, a.Preferred}, leaseTime, r.sys.now().Sub(read)) {
				pending++
			}
		}
		if pending == 0 {
			return nil
		}
		if err := poll.sleep(ctx, r.sys); err != nil {
			return fmt.Errorf("%d address(es) not renewed: valid_lft did not grow: %w", pending, err)
		}
	}
}

// renewUDHCPC sends busybox udhcpc SIGUSR1 ("renew now"), unless it is
// already talking to a server: udhcpc holds a DHCP socket only then (none
// while bound), and a SIGUSR1 while its own renewal request waits for the
// answer makes it start over — it deconfigures, dropping the address, and
// discovers again (busybox 1.35, "two SIGUSR1 received"). That renewal,
// begun by the client's own timer, an operator or an earlier hook, is
// awaited instead.
func (r *Runner) renewUDHCPC(j *job, dry bool) (string, error) {
	pid := j.c.proc.PID
	if busy, err := r.sys.dhcpSocket(pid); err == nil && busy {
		return fmt.Sprintf("udhcpc pid %d is already renewing (a DHCP socket open): awaited, not signalled", pid), nil
	}
	action := fmt.Sprintf("SIGUSR1 to udhcpc pid %d", pid)
	if dry {
		return action, nil
	}
	return action, r.sys.signal(pid, syscall.SIGUSR1)
}

// renewDHClient renews an ISC dhclient, which has no "renew now" verb:
// SIGTERM makes it exit without running its script and without releasing
// (dhclient -x would run the script with reason STOP, which removes the
// address; -r releases the lease); the same command line started again
// INIT-REBOOTs, asking for the lease it has. Debian's dhclient-script then
// fails to re-add the address that is still there, so the kernel keeps the
// old lifetimes: they are set from the new lease, as `ip addr change
// IP/LEN dev IF valid_lft L preferred_lft L` would, through netlink.
func (r *Runner) renewDHClient(ctx context.Context, j *job, dry bool) (string, error) {
	p := j.c.proc
	argv := slices.Clone(p.Argv)
	if p.Exe != "" && !strings.HasSuffix(p.Exe, " (deleted)") {
		argv[0] = p.Exe // argv[0] may have been found through a $PATH we lack
	}
	action := fmt.Sprintf("SIGTERM dhclient pid %d, restart `%s`, set lifetimes from %s", p.PID, strings.Join(argv, " "), j.c.leaseFile)
	if j.c.family == 6 {
		action = fmt.Sprintf("SIGTERM dhclient pid %d, drop its lease6 of %s from %s (a restart would only Confirm it), restart `%s`, set lifetimes from the new lease",
			p.PID, strings.Join(j.ifaces, ","), j.c.leaseFile, strings.Join(argv, " "))
	}
	if dry {
		return action, nil
	}
	old, _ := r.sys.readFile(j.c.leaseFile)
	oldLeases, _ := ParseLeases(old)
	seen := map[string]bool{}
	for _, l := range oldLeases {
		seen[leaseID(l)] = true
	}

	if err := r.sys.signal(p.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return action, fmt.Errorf("SIGTERM dhclient %d: %w", p.PID, err)
	}
	if err := r.waitExit(ctx, p.PID, 2*time.Second); err != nil {
		// It ignores SIGTERM: SIGKILL does not release or flush either.
		_ = r.sys.signal(p.PID, syscall.SIGKILL)
		if err := r.waitExit(ctx, p.PID, time.Second); err != nil {
			return action, fmt.Errorf("dhclient %d does not exit: %w", p.PID, err)
		}
	}
	if j.c.family == 6 {
		// A restarted dhclient -6 sends a Confirm for the lease it has,
		// which does not extend the lifetimes (RFC 8415 §18.2.3), and keeps
		// the lease's wall-clock schedule. Without the lease it solicits
		// again with the same DUID (kept in the file) and IAID, and gets
		// the same address with fresh lifetimes; the address stays on the
		// interface meanwhile.
		for _, iface := range j.ifaces {
			old = withoutLeases6(old, iface)
		}
		if err := r.sys.replaceFile(j.c.leaseFile, old); err != nil {
			r.log.Warn("cannot drop the old DHCPv6 lease: the restart will only confirm it", "lease_file", j.c.leaseFile, "error", err)
		}
	}
	pid, outFile, exited, err := r.sys.spawn(argv, p.Env, p.Dir)
	if err != nil {
		return action, fmt.Errorf("restart dhclient: %w (the interface has no DHCP client now!)", err)
	}
	output := func() string {
		b, _ := os.ReadFile(outFile)
		return strings.TrimSpace(string(b))
	}
	defer os.Remove(outFile)
	r.log.Info("dhclient restarted", "old_pid", p.PID, "pid", pid, "argv", strings.Join(argv, " "))

	// Wait for the new lease: one in the file that was not there before,
	// for each interface with a protected address (all of them if none).
	family := j.c.family
	var want []string
	for _, a := range j.addrs {
		if !slices.Contains(want, a.Interface) {
			want = append(want, a.Interface)
		}
	}
	if len(want) == 0 {
		want = j.ifaces
	}
	var fresh map[string]Lease
	var goneSince time.Time
	var poll poller
	var last []byte
	for parsed := false; ; parsed = true {
		// Parsed again only when it changed: on a slow machine parsing
		// at each poll took CPU from the very client being waited for.
		if b, _ := r.sys.readFile(j.c.leaseFile); !parsed || !bytes.Equal(b, last) {
			last = b
			leases, _ := ParseLeases(b)
			fresh = map[string]Lease{}
			for _, iface := range want {
				if l, ok := LatestLease(leases, iface, family); ok && !seen[leaseID(l)] {
					fresh[iface] = l
				}
			}
			if len(fresh) == len(want) {
				break
			}
		}
		// The started process exited and no dhclient runs by the pid file:
		// it failed. A daemonising dhclient writes its pid file after its
		// parent may have exited, so this must last a second.
		select {
		case <-exited:
			switch now := r.sys.now(); {
			case r.sys.alive(pidFromFile(r.sys, j.c.pidFile)):
				goneSince = time.Time{}
			case goneSince.IsZero():
				goneSince = now
			case now.Sub(goneSince) >= time.Second:
				return action, fmt.Errorf("restarted dhclient exited without a new lease: %s", output())
			}
		default:
		}
		if err := poll.sleep(ctx, r.sys); err != nil {
			return action, fmt.Errorf("no new lease in %s: %w", j.c.leaseFile, err)
		}
	}
	if out := output(); out != "" {
		r.log.Debug("dhclient output", "output", out)
	}
	all, err := r.sys.addrs()
	if err != nil {
		return action, err
	}
	var errs []error
	for iface, l := range fresh {
		j.leases[leaseKey(iface, family)] = l
		for _, a := range all {
			if a.Interface != iface || a.family() != family || !leaseHas(l, a.Prefix.Addr()) {
				continue
			}
			valid, pref := l.LeaseTime, l.PreferredLife
			for _, la := range l.Addrs {
				if la.Address == a.Prefix.Addr() {
					valid, pref = la.MaxLife, la.PreferredLife
				}
			}
			if valid <= 0 {
				continue
			}
			if err := r.sys.setLifetimes(a, valid, min(pref, valid)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return action, errors.Join(errs...)
}

// leaseID identifies a lease block by what changes at every renewal.
func leaseID(l Lease) string {
	return fmt.Sprint(l.V6, l.Interface, l.Address, l.Renew.Unix(), l.Rebind.Unix(), l.Expire.Unix(), l.LeaseTime, l.Addrs)
}

func pidFromFile(s system, path string) int {
	b, err := s.readFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// waitExit waits until pid has exited, for at most limit: on a pidfd,
// else polling.
func (r *Runner) waitExit(ctx context.Context, pid int, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if err := r.sys.awaitExit(ctx, pid); !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	var poll poller
	for r.sys.alive(pid) {
		if err := poll.sleep(ctx, r.sys); err != nil {
			return err
		}
	}
	return nil
}

// renewDHCPCD runs `dhcpcd [-4|-6] -N IFACE`: the running daemon renews the
// interface's leases at once. The family flag must match the daemon's,
// whose control socket is IFACE-4.sock when it was started with -4.
func (r *Runner) renewDHCPCD(ctx context.Context, j *job, dry bool) (string, error) {
	exe := j.c.proc.Exe
	if exe == "" || strings.HasSuffix(exe, " (deleted)") {
		exe = "dhcpcd"
	}
	var cmds [][]string
	for _, iface := range j.ifaces {
		argv := []string{exe}
		switch j.c.family {
		case 4:
			argv = append(argv, "-4")
		case 6:
			argv = append(argv, "-6")
		}
		cmds = append(cmds, append(argv, "-N", iface))
	}
	var acts []string
	for _, c := range cmds {
		acts = append(acts, "`"+strings.Join(c, " ")+"`")
	}
	action := strings.Join(acts, ", ")
	if dry {
		return action, nil
	}
	for _, c := range cmds {
		if out, err := r.sys.run(ctx, c); err != nil {
			return action, fmt.Errorf("%s: %w: %s", strings.Join(c, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return action, nil
}

// renewNetworkd asks systemd-networkd to renew each link, over D-Bus
// (Manager.RenewLink), else with `networkctl renew IFACE`.
func (r *Runner) renewNetworkd(ctx context.Context, j *job, dry bool) (string, error) {
	var acts []string
	var errs []error
	for _, iface := range j.ifaces {
		idx := ifaceIndex(j.addrs, iface)
		if idx == 0 {
			all, _ := r.sys.addrs()
			idx = ifaceIndex(all, iface)
		}
		act := fmt.Sprintf("D-Bus org.freedesktop.network1 RenewLink(%d) for %s", idx, iface)
		if dry {
			acts = append(acts, act)
			continue
		}
		err := r.sys.networkdRenew(ctx, idx)
		if err != nil {
			argv := []string{"networkctl", "renew", iface}
			act += fmt.Sprintf(" failed (%v); `%s`", err, strings.Join(argv, " "))
			if out, cerr := r.sys.run(ctx, argv); cerr != nil {
				errs = append(errs, fmt.Errorf("%v; networkctl renew %s: %w: %s", err, iface, cerr, strings.TrimSpace(string(out))))
			}
		}
		acts = append(acts, act)
	}
	return strings.Join(acts, ", "), errors.Join(errs...)
}

// renewNM asks NetworkManager to reapply each device's applied profile
// (Device.Reapply with empty settings): it reconfigures the device without
// deactivating it. See docs/stephook.md for what that does to the lease.
func (r *Runner) renewNM(ctx context.Context, j *job, dry bool) (string, error) {
	var acts []string
	var errs []error
	for _, iface := range j.ifaces {
		dev, err := r.sys.nmDevice(ctx, iface)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		acts = append(acts, fmt.Sprintf("D-Bus NetworkManager Device.Reapply(%s) for %s", filepath.Base(dev.Path), iface))
		if !dry {
			if err := r.sys.nmReapply(ctx, dev.Path); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return strings.Join(acts, ", "), errors.Join(errs...)
}
