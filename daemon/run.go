package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ntptool/ntptool/audit"
	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/config"
	"github.com/ntptool/ntptool/control"
	"github.com/ntptool/ntptool/driftfile"
	"github.com/ntptool/ntptool/hookproxy"
	"github.com/ntptool/ntptool/metrics"
	"github.com/ntptool/ntptool/netio"
	"github.com/ntptool/ntptool/notify"
	"github.com/ntptool/ntptool/ntpserve"
	"github.com/ntptool/ntptool/pool"
	"github.com/ntptool/ntptool/privdrop"
	"github.com/ntptool/ntptool/stephook"
)

// DefaultConfigPath is where `ntptool run` reads its configuration.
const DefaultConfigPath = "/etc/ntptool.toml"

// RunOptions configure Run. The zero value runs DefaultConfigPath with
// clock control.
type RunOptions struct {
	// ConfigPath is the configuration: ntptool TOML, or an existing
	// ntp.conf or chrony.conf (told apart by content, imported at load;
	// what cannot be mapped is logged as a warning with its line).
	ConfigPath string
	// NoClockControl runs without changing the clock (clock.Null over a
	// read-only view of the host clock, like chronyd -x): everything is
	// computed, nothing is changed. Also set by [clock] control = false.
	NoClockControl bool
	// Logger receives the daemon's log; nil discards it.
	Logger *slog.Logger
	// Resolver resolves the sources' names off the loop. Default
	// net.DefaultResolver.
	Resolver pool.Resolver
	// Kernel is the kernel clock under clock control. Default
	// clock.Linux{} (CAP_SYS_TIME needed).
	Kernel clock.Kernel
	// Reload, when it delivers, reloads the configuration (SIGHUP).
	Reload <-chan struct{}
	// Started, when not nil, is called from the loop once it runs, with
	// the engine's status, before the first event.
	Started func()
	// HookHelper is the command line of the privileged hook helper (the
	// ntptool binary's hidden hook-helper command, package hookproxy). It
	// is started before the privilege drop when [run] user makes a
	// process started as root switch user and hooks are configured; nil
	// runs the hooks in the daemon's own, unprivileged process.
	HookHelper []string
	// ReadyTimeout is how long start-up waits for the first clock update
	// before it tells systemd READY=1 anyway. Default DefaultReadyTimeout.
	ReadyTimeout time.Duration
}

// DefaultReadyTimeout is how long the daemon waits for its first clock
// update before it reports itself started (READY=1) to systemd anyway:
// long enough for DNS and an iburst against slow servers, well within the
// unit's TimeoutStartSec (5 min).
const DefaultReadyTimeout = 60 * time.Second

// Errors of Run.
var (
	// ErrConfig: the configuration could not be loaded.
	ErrConfig = errors.New("configuration")
)

// lookupTimeout bounds one DNS lookup.
const lookupTimeout = 10 * time.Second

// Run runs the daemon until ctx is done: it loads the configuration,
// takes the clock (or, without clock control, a virtual one), opens the
// sources' sockets, the control socket and the embedded server, and runs
// one event loop that owns the engine. Blocking work (DNS, the drift
// file's fsync, step hooks) runs off the loop and reports back. When ctx
// is done it saves the drift file and returns nil.
func Run(ctx context.Context, opt RunOptions) error {
	h, err := start(ctx, opt)
	if err != nil {
		return err
	}
	defer h.close()
	return h.loop(ctx)
}

// host is the daemon on a host: the engine and everything around it. One
// goroutine, the loop, owns it; the goroutines it starts report back
// through its channels.
type host struct {
	opt  RunOptions
	log  *slog.Logger
	cfg  *config.Config
	path string

	clk     *clock.Clock
	watched *clock.Watched // under clock control
	null    *clock.Null    // without
	control bool

	tr      *netio.Transport
	eng     *Engine
	pool    *pool.Manager
	lookups *pool.Lookuper
	members map[int]pool.Member
	polls   map[int]int // the polls last reported to the pool manager, by id

	pub     control.Publisher
	asks    chan chan *control.Snapshot // the control socket's reads (see snapshots)
	changed bool                        // an event since the last snapshot
	builtAt time.Duration               // when it was built (CLOCK_MONOTONIC)
	ctl     *control.Server
	srv     *ntpserve.Server
	served  ntpserve.AtomicState
	prec    int8

	hooks     hookproxy.Runner
	helper    *hookproxy.Client // the privileged hook helper, if any
	watcher   *stephook.Watcher
	hookDone  chan hookReport
	watchCh   chan stephook.Detection
	driftDone chan error
	cancel    context.CancelFunc // of the goroutines
	ctx       context.Context

	// Operations: the audit journal, the metrics, systemd, the privilege
	// drop (see ops.go).
	journal   *audit.Journal
	audit     auditState
	totals    totals
	metrics   metrics.Holder // set only when metricsOn
	metricsOn bool           // [metrics] listen is served
	notifier  *notify.Notifier
	note      notifyState
	runUID    int // the user [run] user switches to, -1 if none
	runGID    int
	restores  int // adjtimex calls of the start-up restore
	proposed  StepProposal
	extReason string // why the external change being booked was seen
}

// hookReport is a finished run of step hooks: a pre-step one (whose
// verdict decides the step), or a post-step or external-step one (whose
// results complete the step's audit entry).
type hookReport struct {
	rep  stephook.Report
	step StepProposal
}

func start(parent context.Context, opt RunOptions) (*host, error) {
	if opt.ConfigPath == "" {
		opt.ConfigPath = DefaultConfigPath
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, notes, err := config.LoadAny(opt.ConfigPath)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	for _, n := range notes {
		log.Warn("configuration: not imported", "file", opt.ConfigPath, "line", n.Line, "directive", n.Text, "why", n.Why)
	}
	if opt.ReadyTimeout <= 0 {
		opt.ReadyTimeout = DefaultReadyTimeout
	}
	ctx, cancel := context.WithCancel(parent)
	h := &host{
		opt: opt, log: log, cfg: cfg, path: opt.ConfigPath,
		members: map[int]pool.Member{}, polls: map[int]int{},
		asks:     make(chan chan *control.Snapshot),
		hookDone: make(chan hookReport, 4), watchCh: make(chan stephook.Detection, 4), driftDone: make(chan error, 1),
		cancel: cancel, ctx: ctx,
		control: cfg.Clock.Control && !opt.NoClockControl,
		runUID:  -1, runGID: -1,
		totals: newTotals(),
	}
	if err := h.open(); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

// open takes the clock and opens everything the loop uses, then drops
// the privileges it needed for that ([run] user).
func (h *host) open() error {
	var err error
	if h.notifier, err = notify.New(); err != nil {
		return err
	}
	if err := h.prepareUser(); err != nil {
		return err
	}
	if err := h.openJournal(); err != nil {
		return err
	}
	drift := h.readDrift()
	if err := h.openClock(drift); err != nil {
		return err
	}
	tr, err := netio.New(netio.Options{})
	if err != nil {
		return fmt.Errorf("open the sources' transport: %w", err)
	}
	h.tr = tr
	h.eng, err = New(h.cfg, Options{
		Clock: h.clk, Transport: hostTransport{h}, Drift: drift, Logger: h.log,
		SaveDrift: h.saveDrift, OnStepProposal: h.preStep, DeferSources: true,
		OnClockChange: h.onClockChange,
	})
	if err != nil {
		return err
	}
	resolver := h.opt.Resolver
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	h.lookups = pool.NewLookuper(resolver, lookupTimeout)
	h.pool = pool.New(pool.Specs(h.cfg.Sources), pool.Options{})
	if err := h.openHooks(); err != nil {
		return err
	}
	h.watcher = stephook.NewWatcher(stephook.WatchOptions{Logger: h.log})
	if err := h.openControl(); err != nil {
		return err
	}
	if err := h.openServer(); err != nil {
		return err
	}
	if err := h.openMetrics(); err != nil {
		return err
	}
	return h.dropPrivileges()
}

// openHooks makes the step hooks' runner: in a privileged helper process
// when the daemon is about to give up root and hooks are configured (see
// package hookproxy), else in this process.
func (h *host) openHooks() error {
	if h.runUID >= 0 && os.Geteuid() == 0 && privdrop.HooksConfigured(h.cfg.Hooks) && len(h.opt.HookHelper) > 0 {
		c, err := hookproxy.Start(h.opt.HookHelper, h.cfg.Hooks, hookproxy.Options{})
		if err != nil {
			return fmt.Errorf("step hooks: %w", err)
		}
		h.helper, h.hooks = c, c
		h.log.Info("step hooks run in a privileged helper process", "pid", c.Pid())
		return nil
	}
	r, err := stephook.New(h.cfg.Hooks, stephook.Options{Logger: h.log.With("part", "hooks")})
	if err != nil {
		return fmt.Errorf("step hooks: %w", err)
	}
	h.hooks = r
	return nil
}

// readDrift reads the drift file; a missing one is none, a corrupt one is
// reported and ignored, never trusted.
func (h *host) readDrift() *driftfile.Drift {
	if h.cfg.DriftFile == "" {
		return nil
	}
	d, err := driftfile.Read(h.cfg.DriftFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		h.log.Info("no drift file yet: the frequency is learnt from scratch", "path", h.cfg.DriftFile)
		return nil
	case err != nil:
		h.log.Error("drift file ignored", "path", h.cfg.DriftFile, "err", err)
		return nil
	}
	h.log.Info("drift file", "path", h.cfg.DriftFile, "freq_ppm", d.CorrectionPPM, "skew_ppm", d.SkewPPM)
	return &d
}

// openClock takes the kernel clock (restoring a state another daemon may
// have left: a tick off nominal after a crash mid-slew is not taken as a
// frequency), or a virtual one without clock control.
func (h *host) openClock(drift *driftfile.Drift) error {
	var err error
	if !h.control {
		h.null = clock.NewNull(clock.HostReadOnly())
		h.clk, err = clock.New(h.null)
		h.log.Info("no clock control: the clock is never changed; the status shows what would be done")
		return err
	}
	k := h.opt.Kernel
	if k == nil {
		k = clock.Linux{}
	}
	h.watched = clock.NewWatched(k)
	var tx unix.Timex
	if _, err := h.watched.Adjtimex(&tx); err != nil {
		return fmt.Errorf("read the kernel clock: %w", err)
	}
	var driftPPM float64
	if drift != nil {
		driftPPM = drift.CorrectionPPM
	}
	plan := clock.PlanStartup(tx, driftPPM, drift != nil)
	for _, n := range plan.Notes {
		h.log.Warn("kernel clock at start", "note", n)
	}
	for _, r := range plan.Restore {
		if _, err := h.watched.Adjtimex(&r); err != nil {
			if errors.Is(err, unix.EPERM) || errors.Is(err, clock.ErrPermission) {
				return clock.ErrPermission
			}
			return fmt.Errorf("restore the kernel clock: %w", err)
		}
		h.restores++
	}
	if len(plan.Restore) > 0 {
		var after unix.Timex
		if _, err := h.watched.Adjtimex(&after); err == nil {
			real, _ := h.watched.Now()
			h.record(restoreEntry(real, tx, after, plan.Notes), 0)
		}
	}
	h.clk, err = clock.New(h.watched)
	return err
}

func (h *host) openControl() error {
	if h.cfg.Control.Socket == "" {
		return nil
	}
	srv, err := control.Listen(h.cfg.Control.Socket, snapshots{ask: h.asks, done: h.ctx.Done(), last: &h.pub}, control.Options{Group: h.cfg.Control.Group, Logger: h.log})
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	h.ctl = srv
	if h.runUID >= 0 && h.cfg.Control.Group == "" {
		// "The daemon's own group" is the user's, not root's.
		if err := os.Lchown(h.cfg.Control.Socket, h.runUID, h.runGID); err != nil {
			h.log.Warn("control socket: not given to the run user", "path", h.cfg.Control.Socket, "err", err)
		}
	}
	go srv.Serve()
	return nil
}

// openServer starts the embedded NTP server ([server] enabled), which
// answers from the daemon's state (served, refreshed after each update).
func (h *host) openServer() error {
	h.prec = ntpserve.MeasurePrecision(time.Now)
	h.served.Store(ntpserve.UpstreamState(ntpserve.Upstream{LocalStratum: h.cfg.Server.LocalStratum, Precision: h.prec}))
	if !h.cfg.Server.Enabled {
		return nil
	}
	srv, err := ntpserve.New(ntpserve.FromConfig(h.cfg.Server), &h.served, time.Now, h.log.With("part", "server"))
	if err != nil {
		return fmt.Errorf("embedded server: %w", err)
	}
	if err := srv.Listen(h.ctx); err != nil {
		return fmt.Errorf("embedded server: %w", err)
	}
	h.srv = srv
	go func() {
		if err := srv.Serve(h.ctx); err != nil && h.ctx.Err() == nil {
			h.log.Error("embedded server stopped", "err", err)
		}
	}()
	return nil
}

func (h *host) close() {
	h.cancel()
	if h.ctl != nil {
		h.ctl.Close()
	}
	if h.lookups != nil {
		h.lookups.Close()
	}
	if h.tr != nil {
		h.tr.Close()
	}
	if h.helper != nil {
		if err := h.helper.Close(); err != nil {
			h.log.Warn("hook helper", "err", err)
		}
	}
	if h.journal != nil {
		h.journal.Close()
	}
}

// hostTransport sends through netio and converts its transmit stamps to
// the engine's clock.
type hostTransport struct{ h *host }

func (t hostTransport) Send(id int, pkt []byte) (time.Time, time.Duration, error) {
	st, err := t.h.tr.Send(id, pkt)
	if err != nil {
		return time.Time{}, 0, err
	}
	real, mono := st.Realtime, st.Mono
	if t.h.null != nil {
		real, mono = t.h.null.Virtual(real, mono)
	}
	return real, mono, nil
}

// hostMono is the host's monotonic clock now.
func hostMono() time.Duration {
	_, mono := clock.Linux{}.Now()
	return mono
}

// hostMonotonic is the host's monotonic time at the engine's m (math.MaxInt64
// stays).
func (h *host) hostMonotonic(m time.Duration) time.Duration {
	if h.null != nil && m != math.MaxInt64 {
		return h.null.BaseMonotonic(m)
	}
	return m
}

// loop is the event loop: the only goroutine that touches the engine.
func (h *host) loop(ctx context.Context) error {
	h.eng.Start()
	h.apply(h.pool.Start(hostMono()))
	go func() {
		if err := h.watcher.Run(h.ctx, func(d stephook.Detection) {
			select {
			case h.watchCh <- d:
			case <-h.ctx.Done():
			}
		}); err != nil && h.ctx.Err() == nil {
			h.log.Warn("no detection of clock steps by others", "err", err)
		}
	}()
	wake := newAlarm() // the engine's next deadline; see alarm
	poolWake := time.NewTimer(time.Hour)
	defer wake.stop()
	defer poolWake.Stop()
	// systemd: READY=1 at the first clock update or after ReadyTimeout;
	// STATUS= after updates, at most every statusInterval (statusWake
	// sends one held back); WATCHDOG=1 from this loop, so that a loop
	// that is stuck stops the pings.
	readyWake := time.NewTimer(h.opt.ReadyTimeout)
	statusWake := time.NewTimer(time.Hour)
	statusWake.Stop()
	defer readyWake.Stop()
	defer statusWake.Stop()
	var watchdog <-chan time.Time
	if iv := h.notifier.WatchdogInterval(); iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		watchdog = t.C
		h.log.Info("systemd watchdog", "interval_seconds", iv.Seconds())
	}
	if h.opt.Started != nil {
		h.opt.Started()
	}
	// quiet: the last event changed nothing the snapshot shows (timers
	// of the service manager, a drift save, a read of the snapshot).
	quiet := false
	for {
		if !quiet {
			h.changed = true
			if h.srv != nil || h.metricsOn {
				h.publish() // they follow every update; the control socket reads on demand
			}
		}
		quiet = false
		h.notifyStatus(statusWake, false)
		wake.setAt(h.hostMonotonic(h.eng.NextWakeup()))
		poolWake.Reset(h.untilPool())
		select {
		case <-ctx.Done():
			h.sdNotify(h.notifier.Stopping())
			h.shutdown()
			return nil
		case <-watchdog:
			h.sdNotify(h.notifier.Watchdog())
			quiet = true
		case <-readyWake.C:
			if !h.note.ready {
				h.log.Warn("no clock update yet: telling the service manager the daemon is ready anyway", "after_seconds", h.opt.ReadyTimeout.Seconds())
				h.note.updated = true
			}
		case <-statusWake.C:
			h.notifyStatus(statusWake, true)
			quiet = true
		case <-wake.C():
			h.eng.Wakeup()
			h.afterPoll()
		case r := <-h.tr.Replies():
			// The replies of one poll round come together: take all that
			// wait, with one clock update for them (one selection, one
			// adjustment, one slew), before the deadlines are set again.
			h.eng.Hold()
			h.receive(r)
			for more := true; more; {
				select {
				case r, ok := <-h.tr.Replies():
					if more = ok; ok { // closed: the transport is shutting down
						h.receive(r)
					}
				default:
					more = false
				}
			}
			h.eng.Release()
		case res := <-h.lookups.Results():
			if res.Err != nil {
				h.log.Warn("name not resolved", "name", res.Name, "err", res.Err)
			}
			h.apply(h.pool.Resolved(res, hostMono()))
		case <-poolWake.C:
			h.apply(h.pool.Tick(hostMono()))
		case hr := <-h.hookDone:
			h.countHooks(hr.rep)
			if hr.rep.Event.Kind == stephook.PreStep {
				h.settleStep(hr)
			} else {
				h.hooksDone(hr.rep)
			}
		case d := <-h.watchCh:
			h.externalStep(d)
		case err := <-h.driftDone:
			if err != nil {
				h.log.Error("drift file not saved", "path", h.cfg.DriftFile, "err", err)
			}
			quiet = true
		case <-h.opt.Reload:
			h.reload()
		case reply := <-h.asks:
			reply <- h.current()
			quiet = true
		}
	}
}

// receive hands a reply to the engine, on the virtual clock without clock
// control.
func (h *host) receive(r netio.Reply) {
	rx, rxMono := r.RxRealtime, r.RxMonotonic()
	if h.null != nil {
		rx, rxMono = h.null.Virtual(rx, rxMono)
	}
	h.eng.Receive(r.Source, r.Packet, rx, rxMono)
}

func (h *host) untilPool() time.Duration {
	next := h.pool.NextWakeup()
	if next == math.MaxInt64 {
		return time.Hour
	}
	return max(next-hostMono(), 0)
}

// afterPoll reports each source's health to the pool manager after its
// polls, and checks whether another process changed the kernel clock.
func (h *host) afterPoll() {
	now := hostMono()
	for _, s := range h.eng.Health() {
		if s.Polls == h.polls[s.ID] {
			continue
		}
		h.polls[s.ID] = s.Polls
		h.apply(h.pool.Report(s.ID, pool.Health{Reach: s.Reach, Polls: s.Polls, Falseticker: s.Role == RoleFalseticker}, now))
	}
	if h.watched == nil {
		return
	}
	ch, err := h.watched.Check()
	switch {
	case err != nil:
		h.log.Error("kernel clock", "err", err)
	case ch.Rate:
		h.log.Warn("another process changed the kernel clock: re-basing on it", "change", ch.String())
		h.extReason = ch.String()
		h.eng.KernelChanged(ch.NewRatePPM)
	case ch.Any():
		h.log.Warn("another process changed the kernel clock", "change", ch.String())
		real, _ := h.clk.Now()
		h.record(audit.Entry{Time: real, Kind: audit.KindExternal, Reason: "another process changed the kernel clock: " + ch.String(), Applied: true}, 0)
	}
}

// apply carries out a pool plan: sources added and removed, lookups
// started.
func (h *host) apply(p pool.Plan) {
	for _, a := range p.Actions {
		switch a.Kind {
		case pool.Add:
			if err := h.tr.Open(a.ID, a.Addr); err != nil {
				h.log.Error("open a source's socket", "name", a.Name, "address", a.Addr, "err", err)
				continue
			}
			sc := h.cfg.Sources[a.Spec]
			if err := h.eng.AddSource(a.ID, sc); err != nil {
				h.log.Error("add a source", "name", a.Name, "err", err)
				h.tr.Remove(a.ID)
				continue
			}
			h.members[a.ID] = pool.Member{ID: a.ID, Spec: a.Spec, Name: a.Name, Addr: a.Addr, Pool: sc.Pool != ""}
			h.log.Info("source added", "name", a.Name, "address", a.Addr.String(), "reason", a.Reason)
		case pool.Remove:
			h.eng.RemoveSource(a.ID)
			h.tr.Remove(a.ID)
			delete(h.members, a.ID)
			delete(h.polls, a.ID)
			h.log.Info("source removed", "name", a.Name, "address", a.Addr.String(), "reason", a.Reason)
		}
	}
	h.lookups.Start(p.Lookups...)
}

// saveDrift writes the drift file off the loop (fsync can take long).
func (h *host) saveDrift(d driftfile.Drift) {
	if h.cfg.DriftFile == "" {
		return
	}
	path := h.cfg.DriftFile
	go func() {
		err := driftfile.Write(path, d)
		select {
		case h.driftDone <- err:
		case <-h.ctx.Done():
		}
	}()
}

// runHooks runs an event's hooks off the loop and reports back; without
// clock control they are only described (a dry run: no step is made, so
// no DHCP client is disturbed and no exec hook told of one).
func (h *host) runHooks(ev stephook.Event, p StepProposal) {
	go func() {
		var rep stephook.Report
		if h.control {
			rep = h.hooks.Run(h.ctx, ev)
		} else {
			rep = h.hooks.DryRun(h.ctx, ev)
		}
		select {
		case h.hookDone <- hookReport{rep: rep, step: p}:
		case <-h.ctx.Done():
		}
	}()
}

// preStep runs the pre-step hooks of a step proposal off the loop.
func (h *host) preStep(p StepProposal) {
	real, _ := h.clk.Now()
	h.proposed = p
	ev := stephook.Event{Kind: stephook.PreStep, Step: p.Step, Old: real, New: real.Add(p.Step),
		Reason: fmt.Sprintf("offset %+.6f s beyond step.threshold %v", -p.Step.Seconds(), h.cfg.Step.Threshold.Duration)}
	h.runHooks(ev, p)
}

// settleStep commits or cancels a step once its pre-step hooks are done,
// and runs the post-step hooks.
func (h *host) settleStep(hr hookReport) {
	h.audit.preHooks = hookRuns(hr.rep, "pre_step")
	defer func() { h.audit.preHooks = nil }()
	if hr.rep.Verdict != stephook.Proceed {
		h.eng.CancelStep(fmt.Errorf("pre-step hooks: %s", hr.rep.Reason), hr.rep.Hold)
		return
	}
	if h.control {
		pending, _ := h.eng.PendingStep()
		h.watcher.Announce(pending.Step)
	}
	real, _ := h.clk.Now()
	res, err := h.eng.CommitStep()
	if err != nil {
		if h.control {
			h.watcher.Withdraw()
		}
		return
	}
	ev := stephook.Event{Kind: stephook.PostStep, Step: res.Step, Old: real, New: real.Add(res.Step), Reason: "step made"}
	h.runHooks(ev, StepProposal{})
}

// externalStep books a step someone else made and runs its hooks.
func (h *host) externalStep(d stephook.Detection) {
	if d.Own {
		return
	}
	ev := d.Event()
	h.extReason = ev.Reason
	h.eng.ExternalStep(d.Step)
	h.runHooks(ev, StepProposal{})
}

// reload reads the configuration again: sources are added and removed
// (the learned frequency is kept); a configuration that does not load is
// reported and the old one stays. The other settings take a restart.
func (h *host) reload() {
	if h.note.ready {
		h.sdNotify(h.notifier.Reloading(uint64(hostMono().Microseconds())))
		defer func() { h.sdNotify(h.notifier.Ready(h.statusLine())) }()
	}
	if h.journal != nil {
		// After logrotate: continue the chain in the new file now.
		if err := h.journal.Reopen(); err != nil {
			h.log.Error("audit journal not reopened", "path", h.journal.Path(), "err", err)
		}
	}
	cfg, notes, err := config.LoadAny(h.path)
	if err != nil {
		h.log.Error("reload: the configuration does not load; keeping the old one", "err", err)
		return
	}
	for _, n := range notes {
		h.log.Warn("configuration: not imported", "file", h.path, "line", n.Line, "directive", n.Text, "why", n.Why)
	}
	h.cfg.Sources = cfg.Sources
	h.apply(h.pool.Reconfigure(pool.Specs(cfg.Sources), hostMono()))
	h.log.Info("configuration reloaded", "sources", len(cfg.Sources))
}

// shutdown writes the audit entries still waiting for their hooks and
// saves the drift file, synchronously: the process is about to exit.
func (h *host) shutdown() {
	h.flushAudit(true)
	st := h.eng.Status()
	if h.cfg.DriftFile == "" || !st.Synced {
		return
	}
	d := h.eng.Drift()
	if err := driftfile.Write(h.cfg.DriftFile, d); err != nil {
		h.log.Error("drift file not saved", "path", h.cfg.DriftFile, "err", err)
		return
	}
	h.log.Info("drift file saved", "path", h.cfg.DriftFile, "freq_ppm", d.CorrectionPPM)
}
