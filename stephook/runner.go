package stephook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ntptool/ntptool/config"
)

// Options are the Runner's dependencies; the zero value is usable.
type Options struct {
	// Logger receives every hook run and its result; nil discards.
	Logger *slog.Logger
	// SystemBus is the D-Bus address of the system bus; "" uses the
	// default (DBUS_SYSTEM_BUS_ADDRESS, else /run/dbus/system_bus_socket).
	SystemBus string

	sys system // the operating system; nil: linuxSystem
}

// Runner runs the hooks of clock-step events as a configuration says. It
// is safe for concurrent use, and runs one event at a time: a run (or
// Renew) that comes while another is in progress waits for it, since two
// renewals at once would restart the same DHCP client twice (the daemon
// starts the post-step hooks, and those of a step made by someone else,
// without waiting for them).
type Runner struct {
	cfg     config.Hooks
	kinds   map[ClientKind]bool // renewers switched on
	timeout time.Duration
	log     *slog.Logger
	sys     system
	turn    chan struct{} // held by the run in progress (capacity 1)
}

// ErrConfig is wrapped by New for a configuration it cannot use.
var ErrConfig = errors.New("hooks configuration")

// New makes a Runner from the [hooks] section of a configuration (already
// validated by config.Validate; New checks what it relies on).
func New(cfg config.Hooks, opt Options) (*Runner, error) {
	r := &Runner{cfg: cfg, timeout: cfg.Timeout.Duration, log: opt.Logger, sys: opt.sys, turn: make(chan struct{}, 1)}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.sys == nil {
		r.sys = linuxSystem{proc: "/proc", busAddr: opt.SystemBus}
	}
	if r.timeout <= 0 {
		return nil, fmt.Errorf("%w: timeout %v: want more than 0", ErrConfig, cfg.Timeout)
	}
	for key, argvs := range map[string][][]string{"pre_step": cfg.PreStep, "post_step": cfg.PostStep, "external_step": cfg.ExternalStep} {
		for i, argv := range argvs {
			if len(argv) == 0 || argv[0] == "" {
				return nil, fmt.Errorf("%w: %s[%d]: empty command", ErrConfig, key, i)
			}
		}
	}
	on := map[ClientKind]bool{
		DHClient: cfg.Renewers.DHClient, DHCPCD: cfg.Renewers.DHCPCD, UDHCPC: cfg.Renewers.UDHCPC,
		Networkd: cfg.Renewers.Networkd, NetworkManager: cfg.Renewers.NetworkManager,
	}
	r.kinds = map[ClientKind]bool{}
	switch cfg.DHCPRenew {
	case "auto":
		r.kinds = on
	case "off":
	default:
		k := ClientKind(cfg.DHCPRenew)
		if !slices.Contains(Kinds, k) {
			return nil, fmt.Errorf("%w: dhcp_renew %q: unknown client", ErrConfig, cfg.DHCPRenew)
		}
		r.kinds[k] = true
	}
	// The first names of the pre-step policies.
	switch r.cfg.OnFailure {
	case "step":
		r.cfg.OnFailure = "proceed"
	case "slew":
		r.cfg.OnFailure = "abort"
	}
	if !slices.Contains([]string{"auto", "proceed", "abort", "hold"}, r.cfg.OnFailure) {
		return nil, fmt.Errorf("%w: on_failure %q: want auto, proceed, abort or hold", ErrConfig, r.cfg.OnFailure)
	}
	for _, p := range []string{cfg.PostStepOnFailure, cfg.ExternalStepOnFailure} {
		if !slices.Contains([]string{"proceed", "abort"}, p) {
			return nil, fmt.Errorf("%w: failure policy %q: want proceed or abort", ErrConfig, p)
		}
	}
	return r, nil
}

// Run runs the hooks of ev: the built-in DHCP renewers, then the exec
// hooks of the event, each bounded by hooks.timeout; after a PostStep or
// ExternalStep it checks every protected address's valid_lft and renews
// once more (logging at Error level) any that is not sane. The report's
// verdict applies the event's failure policy; for a PreStep the caller
// commits the step only if it is Proceed.
func (r *Runner) Run(ctx context.Context, ev Event) Report {
	return r.run(ctx, ev, false)
}

// DryRun reports what Run would do for ev without doing it: every result
// has Outcome DryRun and its Action (ntptool step --dry-run).
func (r *Runner) DryRun(ctx context.Context, ev Event) Report {
	return r.run(ctx, ev, true)
}

// RenewRequest says what Renew renews.
type RenewRequest struct {
	// Interfaces limits the renewal to these interfaces; empty: all.
	Interfaces []string
	// DryRun reports what would be done.
	DryRun bool
}

// Renew runs the built-in renewers now, exactly as a pre-step hook would
// (ntptool renew): one result per client instance, plus a Skipped one for
// each requested interface no enabled renewer manages.
func (r *Runner) Renew(ctx context.Context, req RenewRequest) []Result {
	if !req.DryRun {
		if err := r.wait(ctx); err != nil {
			return []Result{{Hook: "renew", Name: "wait", Outcome: Failed, Err: err}}
		}
		defer r.done()
	}
	jobs, missing, err := r.plan(ctx, req.Interfaces)
	if err != nil {
		return []Result{{Hook: "renew", Name: "detect", Outcome: Failed, Err: err}}
	}
	results := r.runJobs(ctx, jobs, req.DryRun)
	for _, iface := range missing {
		results = append(results, Result{Hook: "renew", Name: "none", Interfaces: []string{iface}, Outcome: Skipped,
			Err: fmt.Errorf("no DHCP client with an enabled renewer manages %s", iface)})
	}
	for _, res := range results {
		r.logResult(PreStep, res)
	}
	return results
}

// wait takes the Runner's turn: it returns once no other run is in
// progress, or with ctx's error.
func (r *Runner) wait(ctx context.Context) error {
	select {
	case r.turn <- struct{}{}:
		return nil
	default:
	}
	r.log.Info("step hooks wait for the run in progress")
	select {
	case r.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the step hooks in progress: %w", ctx.Err())
	}
}

// done gives the turn back.
func (r *Runner) done() { <-r.turn }

func (r *Runner) run(ctx context.Context, ev Event, dry bool) Report {
	start := r.sys.now()
	rep := Report{Event: ev}
	log := r.log.With("event", ev.Kind.String(), "step_seconds", ev.Step.Seconds(), "reason", ev.Reason)
	if !dry {
		if err := r.wait(ctx); err != nil {
			rep.Verdict, rep.Reason = Abort, err.Error()
			log.Warn("step hooks not run", "err", err)
			return rep
		}
		defer r.done()
	}
	log.Info("running step hooks", "dry_run", dry)

	jobs, _, err := r.plan(ctx, nil)
	if err != nil {
		rep.Results = append(rep.Results, Result{Hook: "renew", Name: "detect", Outcome: Failed, Err: err})
	}
	// Margins before the renewals: what an unrenewed address survives.
	margins := map[*job]time.Duration{}
	for _, j := range jobs {
		if m, ok := r.jobMargin(j); ok {
			margins[j] = m
		}
	}
	renewals := r.runJobs(ctx, jobs, dry)
	rep.Results = append(rep.Results, renewals...)

	policy := r.policy(ev.Kind)
	// hold aborts as abort does; the step's owner then holds the clock
	// instead of slewing (Report.Hold).
	abortAny := policy == "abort" || policy == "hold"
	for i, res := range renewals {
		if res.Outcome != Failed && res.Outcome != TimedOut || rep.Verdict == Abort {
			continue
		}
		j := jobs[i]
		switch {
		case abortAny:
			rep.Verdict, rep.Reason = Abort, fmt.Sprintf("renewal by %s failed: %v", res.Name, res.Err)
		case policy == "auto":
			// Abort only when the address would outlive no renewal: a
			// wall-clock client that was not renewed, and a backward step
			// beyond its margin (or one we cannot measure).
			m, known := margins[j]
			if ev.Kind == PreStep && wallClock(j.c.kind, j.c.backend) && ev.Step < 0 && (!known || -ev.Step >= m) {
				rep.Verdict, rep.Reason = Abort, fmt.Sprintf("renewal by %s failed (%v) and a %v step would delay its next renewal past the address's expiry", res.Name, res.Err, ev.Step)
			}
		}
	}

	if ev.Kind != PreStep && !dry {
		rep.Results = append(rep.Results, r.verify(ctx, jobs)...)
	}

	for i, argv := range r.hooks(ev.Kind) {
		if rep.Verdict == Abort {
			rep.Results = append(rep.Results, Result{Hook: "exec", Name: argv[0], Action: strings.Join(argv, " "), Outcome: Skipped,
				Err: errors.New("skipped: an earlier hook failed and the policy is abort")})
			continue
		}
		res := r.exec(ctx, ev, argv, dry)
		rep.Results = append(rep.Results, res)
		if (res.Outcome == Failed || res.Outcome == TimedOut) && abortAny && rep.Verdict != Abort {
			rep.Verdict, rep.Reason = Abort, fmt.Sprintf("hook %d (%s) %s: %v", i, argv[0], res.Outcome, res.Err)
		}
	}
	rep.Hold = rep.Verdict == Abort && policy == "hold"
	rep.Duration = r.sys.now().Sub(start)
	for _, res := range rep.Results {
		r.logResult(ev.Kind, res)
	}
	if rep.Verdict == Abort {
		log.Warn("step hooks say abort", "why", rep.Reason)
	} else {
		log.Info("step hooks done", "verdict", rep.Verdict.String(), "duration_seconds", rep.Duration.Seconds())
	}
	return rep
}

// policy returns the failure policy of an event: "auto", "proceed",
// "abort" or (pre-step only) "hold".
func (r *Runner) policy(k Kind) string {
	switch k {
	case PreStep:
		return r.cfg.OnFailure
	case PostStep:
		return r.cfg.PostStepOnFailure
	}
	return r.cfg.ExternalStepOnFailure
}

func (r *Runner) hooks(k Kind) [][]string {
	switch k {
	case PreStep:
		return r.cfg.PreStep
	case PostStep:
		return r.cfg.PostStep
	case ExternalStep:
		return r.cfg.ExternalStep
	}
	return nil
}

// jobMargin is the smallest backward-step margin of a job's addresses.
func (r *Runner) jobMargin(j *job) (time.Duration, bool) {
	now := r.sys.now()
	best, found := time.Duration(0), false
	for _, a := range j.addrs {
		m := stepMargin(j.c.kind, j.c.backend, a, j.lease(a), now)
		if m.MaxBackward == nil {
			continue
		}
		if !found || *m.MaxBackward < best {
			best, found = *m.MaxBackward, true
		}
	}
	return best, found
}

func (r *Runner) logResult(k Kind, res Result) {
	attrs := []any{"event", k.String(), "hook", res.Hook, "name", res.Name, "outcome", string(res.Outcome),
		"duration_seconds", res.Duration.Seconds()}
	if len(res.Interfaces) > 0 {
		attrs = append(attrs, "interfaces", strings.Join(res.Interfaces, ","))
	}
	if res.Action != "" {
		attrs = append(attrs, "action", res.Action)
	}
	for _, b := range res.Before {
		attrs = append(attrs, "valid_lft_before_seconds_"+b.Address.String(), seconds(b.Valid))
	}
	for _, a := range res.After {
		attrs = append(attrs, "valid_lft_after_seconds_"+a.Address.String(), seconds(a.Valid))
	}
	if res.Output != "" {
		attrs = append(attrs, "output", res.Output)
	}
	switch {
	case res.Outcome == OK || res.Outcome == DryRun:
		r.log.Info("hook", attrs...)
	case res.Outcome == Skipped:
		r.log.Warn("hook", append(attrs, "error", errText(res.Err))...)
	case res.Hook == "exec":
		r.log.Warn("hook failed", append(attrs, "error", errText(res.Err))...)
	default:
		// A failed renewal can take the host off its network.
		r.log.Error("hook failed", append(attrs, "error", errText(res.Err))...)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// plan detects the clients and groups the protected addresses by client
// instance. With ifaces, only clients of those interfaces; missing lists
// the requested interfaces no enabled renewer covers.
func (r *Runner) plan(ctx context.Context, ifaces []string) (jobs []*job, missing []string, err error) {
	all, err := r.sys.addrs()
	if err != nil {
		return nil, ifaces, err
	}
	clients, err := detect(ctx, r.sys, all)
	if err != nil {
		return nil, ifaces, fmt.Errorf("detect DHCP clients: %w", err)
	}
	clients = slices.DeleteFunc(clients, func(c *client) bool { return !r.kinds[c.kind] })
	want := func(iface string) bool { return len(ifaces) == 0 || slices.Contains(ifaces, iface) }
	byClient := map[*client]*job{}
	nm := map[string]nmDevice{}
	get := func(c *client) *job {
		j := byClient[c]
		if j == nil {
			j = &job{c: c, leases: map[string]Lease{}}
			byClient[c] = j
			jobs = append(jobs, j)
		}
		return j
	}
	for _, a := range all {
		if !a.Dynamic() || !want(a.Interface) {
			continue
		}
		c := owner(ctx, r.sys, clients, a, nm)
		if c == nil {
			continue
		}
		j := get(c)
		r.loadLease(j, a)
		if a.slaac(j.lease(a) != nil) {
			continue // SLAAC: the kernel ages it in monotonic time
		}
		j.addrs = append(j.addrs, a)
		if !slices.Contains(j.ifaces, a.Interface) {
			j.ifaces = append(j.ifaces, a.Interface)
		}
	}
	// Clients whose interfaces have no dynamic address (udhcpc with
	// infinite lifetimes, a client still binding) are renewed too.
	for _, c := range clients {
		for _, iface := range c.ifaces {
			if want(iface) && c.kind != NetworkManager {
				j := get(c)
				if !slices.Contains(j.ifaces, iface) {
					j.ifaces = append(j.ifaces, iface)
				}
			}
		}
	}
	jobs = slices.DeleteFunc(jobs, func(j *job) bool { return len(j.ifaces) == 0 })
	for _, iface := range ifaces {
		if !slices.ContainsFunc(jobs, func(j *job) bool { return slices.Contains(j.ifaces, iface) }) {
			missing = append(missing, iface)
		}
	}
	return jobs, missing, nil
}

// loadLease reads the newest lease of a's interface and family from a
// dhclient lease file.
func (r *Runner) loadLease(j *job, a Addr) {
	if j.c.kind != DHClient {
		return
	}
	key := leaseKey(a.Interface, a.family())
	if _, ok := j.leases[key]; ok {
		return
	}
	b, err := r.sys.readFile(j.c.leaseFile)
	if err != nil {
		return
	}
	leases, _ := ParseLeases(b)
	if l, ok := LatestLease(leases, a.Interface, a.family()); ok {
		j.leases[key] = l
	}
}

// runJobs renews the clients in parallel (a dhclient restart takes up to a
// second; the step waits for all of them) and returns the results in job
// order.
func (r *Runner) runJobs(ctx context.Context, jobs []*job, dry bool) []Result {
	out := make([]Result, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() { out[i] = r.renewJob(ctx, j, dry) })
	}
	wg.Wait()
	return out
}

// minSaneValid is the valid_lft below which an address is not sane after
// a step when its lease time is unknown.
const minSaneValid = 30 * time.Second

// verify checks, after a step, that every protected address has a sane
// valid_lft: at least half its lease time (30 s if unknown). An address
// that is not sane is renewed once more; both are logged at Error level.
func (r *Runner) verify(ctx context.Context, jobs []*job) []Result {
	var out []Result
	for _, j := range jobs {
		bad := r.insane(j)
		if len(bad) == 0 {
			continue
		}
		for _, a := range bad {
			r.log.Error("address lifetime not sane after the step: renewing again", "interface", a.Interface,
				"address", a.Prefix.String(), "valid_lft_seconds", seconds(a.Valid), "client", j.c.name())
		}
		res := r.renewJob(ctx, j, false)
		res.Hook = "verify"
		if still := r.insane(j); len(still) > 0 {
			var names []string
			for _, a := range still {
				names = append(names, fmt.Sprintf("%s on %s (valid_lft %d s)", a.Prefix, a.Interface, seconds(a.Valid)))
				r.log.Error("address will expire: renewal after the step failed", "interface", a.Interface,
					"address", a.Prefix.String(), "valid_lft_seconds", seconds(a.Valid), "client", j.c.name())
			}
			res.Outcome = Failed
			res.Err = errors.Join(res.Err, fmt.Errorf("still not renewed: %s", strings.Join(names, ", ")))
		}
		out = append(out, res)
	}
	return out
}

// insane lists a job's addresses whose valid_lft is too short, or that are
// gone.
func (r *Runner) insane(j *job) []Addr {
	all, err := r.sys.addrs()
	if err != nil {
		return j.addrs
	}
	var bad []Addr
	for _, want := range j.addrs {
		a, ok := findAddr(all, want.Interface, want.Prefix)
		if !ok {
			a = want
			a.Valid = 0
			bad = append(bad, a)
			continue
		}
		limit := minSaneValid
		if l := j.lease(a); l != nil && l.LeaseTime > 0 {
			limit = l.LeaseTime / 2
		}
		if a.Valid != Forever && a.Valid < limit {
			bad = append(bad, a)
		}
	}
	return bad
}
