package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/config"
	"github.com/ntptool/ntptool/control"
	"github.com/ntptool/ntptool/driftfile"
	"github.com/ntptool/ntptool/netio"
	"github.com/ntptool/ntptool/ntpserve"
	"github.com/ntptool/ntptool/pool"
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
}

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

	pub    control.Publisher
	ctl    *control.Server
	srv    *ntpserve.Server
	served ntpserve.AtomicState
	prec   int8

	hooks     *stephook.Runner
	watcher   *stephook.Watcher
	hookDone  chan hookReport
	watchCh   chan stephook.Detection
	driftDone chan error
	cancel    context.CancelFunc // of the goroutines
	ctx       context.Context
}

// hookReport is a finished run of step hooks.
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
	ctx, cancel := context.WithCancel(parent)
	h := &host{
		opt: opt, log: log, cfg: cfg, path: opt.ConfigPath,
		members: map[int]pool.Member{}, polls: map[int]int{},
		hookDone: make(chan hookReport, 1), watchCh: make(chan stephook.Detection, 4), driftDone: make(chan error, 1),
		cancel: cancel, ctx: ctx,
		control: cfg.Clock.Control && !opt.NoClockControl,
	}
	if err := h.open(); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

// open takes the clock and opens everything the loop uses.
func (h *host) open() error {
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
	if h.hooks, err = stephook.New(h.cfg.Hooks, stephook.Options{Logger: h.log.With("part", "hooks")}); err != nil {
		return fmt.Errorf("step hooks: %w", err)
	}
	h.watcher = stephook.NewWatcher(stephook.WatchOptions{Logger: h.log})
	if err := h.openControl(); err != nil {
		return err
	}
	return h.openServer()
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
	}
	h.clk, err = clock.New(h.watched)
	return err
}

func (h *host) openControl() error {
	if h.cfg.Control.Socket == "" {
		return nil
	}
	srv, err := control.Listen(h.cfg.Control.Socket, &h.pub, control.Options{Group: h.cfg.Control.Group, Logger: h.log})
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	h.ctl = srv
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

// untilEngine is how long from now until the engine's monotonic time m.
func (h *host) untilEngine(m time.Duration) time.Duration {
	if m == math.MaxInt64 {
		return time.Hour
	}
	if h.null != nil {
		m = h.null.BaseMonotonic(m)
	}
	return max(m-hostMono(), 0)
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
	wake := time.NewTimer(0)
	poolWake := time.NewTimer(time.Hour)
	defer wake.Stop()
	defer poolWake.Stop()
	if h.opt.Started != nil {
		h.opt.Started()
	}
	for {
		h.publish()
		wake.Reset(h.untilEngine(h.eng.NextWakeup()))
		poolWake.Reset(h.untilPool())
		select {
		case <-ctx.Done():
			h.shutdown()
			return nil
		case <-wake.C:
			h.eng.Wakeup()
			h.afterPoll()
		case r := <-h.tr.Replies():
			rx, rxMono := r.RxRealtime, r.RxMonotonic()
			if h.null != nil {
				rx, rxMono = h.null.Virtual(rx, rxMono)
			}
			h.eng.Receive(r.Source, r.Packet, rx, rxMono)
		case res := <-h.lookups.Results():
			if res.Err != nil {
				h.log.Warn("name not resolved", "name", res.Name, "err", res.Err)
			}
			h.apply(h.pool.Resolved(res, hostMono()))
		case <-poolWake.C:
			h.apply(h.pool.Tick(hostMono()))
		case hr := <-h.hookDone:
			h.settleStep(hr)
		case d := <-h.watchCh:
			h.externalStep(d)
		case err := <-h.driftDone:
			if err != nil {
				h.log.Error("drift file not saved", "path", h.cfg.DriftFile, "err", err)
			}
		case <-h.opt.Reload:
			h.reload()
		}
	}
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
	st := h.eng.Status()
	now := hostMono()
	for _, s := range st.Sources {
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
		h.eng.KernelChanged(ch.NewRatePPM)
	case ch.Any():
		h.log.Warn("another process changed the kernel clock", "change", ch.String())
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

// preStep runs the pre-step hooks of a step proposal off the loop.
func (h *host) preStep(p StepProposal) {
	real, _ := h.clk.Now()
	ev := stephook.Event{Kind: stephook.PreStep, Step: p.Step, Old: real, New: real.Add(p.Step), Reason: "offset beyond the step threshold"}
	go func() {
		rep := h.runHooks(ev)
		select {
		case h.hookDone <- hookReport{rep: rep, step: p}:
		case <-h.ctx.Done():
		}
	}()
}

// settleStep commits or cancels a step once its pre-step hooks are done,
// and runs the post-step hooks.
func (h *host) settleStep(hr hookReport) {
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
	go h.runHooks(ev) // the report is logged by the runner
}

// runHooks runs the hooks of the daemon's own step; without clock control
// the step is virtual, and so are its hooks (a dry run: no DHCP client is
// restarted, no exec hook runs, for a step the host never sees).
func (h *host) runHooks(ev stephook.Event) stephook.Report {
	if !h.control {
		return h.hooks.DryRun(h.ctx, ev)
	}
	return h.hooks.Run(h.ctx, ev)
}

// externalStep books a step someone else made and runs its hooks.
func (h *host) externalStep(d stephook.Detection) {
	if d.Own {
		return
	}
	h.eng.ExternalStep(d.Step)
	go h.hooks.Run(h.ctx, d.Event())
}

// reload reads the configuration again: sources are added and removed
// (the learned frequency is kept); a configuration that does not load is
// reported and the old one stays. The other settings take a restart.
func (h *host) reload() {
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

// shutdown saves the drift file, synchronously: the process is about to
// exit.
func (h *host) shutdown() {
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
