package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ntptool/ntptool/audit"
	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/control"
	"github.com/ntptool/ntptool/metrics"
	"github.com/ntptool/ntptool/notify"
	"github.com/ntptool/ntptool/privdrop"
	"github.com/ntptool/ntptool/stephook"
)

// The daemon's operations: the audit journal of its clock changes, the
// running totals of the metrics, systemd's notifications, and the
// privilege drop. All of it runs on the loop.

// auditState is the journal's side of the loop.
type auditState struct {
	// pending are the entries not written yet, in order: an entry waits
	// for the hooks of its change (a step's post-step hooks, an external
	// step's hooks) so that it carries their results, and the entries
	// after it wait behind it, so that the journal stays in order.
	pending []pendingEntry
	// preHooks are the pre-step hooks' results of the step being
	// committed or cancelled, for its entry.
	preHooks []audit.HookRun
	// leap is the leap second last handed to the kernel.
	leap int
	// loud is when a routine entry (slew, frequency) was last logged at
	// Info level with the journal's head; the others are always.
	loud    time.Duration
	loudSet bool
	// failed is the cause of the last failed append, logged once.
	failed string
}

type pendingEntry struct {
	e    audit.Entry
	wait stephook.Kind // the hooks it waits for; 0 when ready
}

// headLogInterval is how often at least the journal's head is logged at
// Info level (with a routine entry), so that a copy of it leaves the host
// through syslog.
const headLogInterval = time.Hour

// entryContext is what entriesFor needs besides the change.
type entryContext struct {
	control   bool     // the daemon changes the clock
	sources   []string // "name (address)" of the change's sources
	preHooks  []audit.HookRun
	threshold time.Duration // step.threshold
	proposed  time.Duration // the step as proposed, before its hooks
	driftFile string
	extReason string // why an external change was seen
	leap      int    // the leap second last handed to the kernel
}

// entriesFor maps one clock change to its journal entries (none for an
// update that changes nothing an auditor asks about: the kernel's error
// estimates alone), the hooks the first waits for, and the leap second in
// force after it. One clock update is one entry: its slew, with the
// frequency the same adjtimex call set; a frequency change without a slew
// (the drift file, the update after a step, updates while a step awaits
// its hooks) is a frequency entry; a new leap second announcement adds a
// leap entry.
func entriesFor(c ClockChange, x entryContext) (entries []audit.Entry, wait stephook.Kind, leap int) {
	applied := x.control && c.Err == nil
	errText := ""
	if c.Err != nil {
		errText = c.Err.Error()
	}
	leap = x.leap
	switch c.Kind {
	case ChangeStep:
		reason := fmt.Sprintf("offset %+.6f s beyond step.threshold %v", -c.Step.Seconds(), x.threshold)
		if x.proposed != 0 && x.proposed != c.Step {
			reason += fmt.Sprintf(" (%+.6f s when proposed, before the pre-step hooks)", x.proposed.Seconds())
		}
		e := audit.StepEntry(c.Time, c.Step, reason, x.sources, slices.Clone(x.preHooks), applied)
		e.Error = errText
		if c.Err == nil {
			wait = stephook.PostStep
		}
		entries = append(entries, e)
	case ChangeUpdate:
		freq := &audit.FrequencyChange{Old: c.OldFreqPPM, New: c.NewFreqPPM}
		switch {
		case c.Slew != 0 || c.SlewLeft != 0:
			var reason string
			switch {
			case c.Slew == 0:
				reason = "clock update: the slew in progress ended, the offset is within the noise"
			default:
				reason = fmt.Sprintf("clock update: offset %+.9f s slewed out over %.0f s", -c.Slew.Seconds(), c.SlewDuration.Seconds())
			}
			if c.Reason != "" {
				reason = c.Reason + "; " + reason
			}
			e := audit.SlewEntry(c.Time, c.SlewLeft, c.Slew, reason, x.sources, applied)
			e.Frequency, e.Error = freq, errText
			if c.Reason != "" {
				e.Hooks = slices.Clone(x.preHooks) // a cancelled step's
			}
			entries = append(entries, e)
		case c.OldFreqPPM != c.NewFreqPPM:
			reason := "clock update"
			switch {
			case c.Reason == "drift file":
				reason = "drift file " + x.driftFile
			case c.Reason != "":
				reason = c.Reason
			case c.Status != nil && !c.Status.Synchronized:
				reason = "clock update while a step awaits its pre-step hooks"
			}
			e := audit.FrequencyEntry(c.Time, c.OldFreqPPM, c.NewFreqPPM, reason, x.sources, applied)
			e.Error = errText
			entries = append(entries, e)
		}
		if c.Status != nil && c.Err == nil && c.Status.Leap != x.leap {
			reason := "announced by the combined sources"
			if c.Status.Leap == 0 {
				reason = "withdrawn by the combined sources"
			}
			entries = append(entries, audit.LeapEntry(c.Time, x.leap, c.Status.Leap, reason, x.sources, applied))
			leap = c.Status.Leap
		}
	case ChangeState:
		reason := c.Reason
		if reason == "" && c.NewState == Synchronised {
			reason = "the clock is corrected from the combined sources"
		}
		entries = append(entries, audit.Entry{Time: c.Time, Kind: audit.KindStatus, Old: c.OldState.String(), New: c.NewState.String(),
			Reason: reason, Sources: x.sources, Applied: x.control})
	case ChangeExternalStep:
		entries = append(entries, audit.ExternalEntry(c.Time, c.Time.Add(c.Step), x.extReason, nil))
		wait = stephook.ExternalStep
	case ChangeKernel:
		entries = append(entries, audit.Entry{Time: c.Time, Kind: audit.KindExternal, Old: c.OldFreqPPM, New: c.NewFreqPPM, Unit: "ppm",
			Reason: "another process changed the kernel clock: " + x.extReason + "; the daemon re-bases on it", Applied: true})
	}
	return entries, wait, leap
}

// restoreEntry records the start-up restore of the kernel state another
// daemon left (before, read at start; after, read back).
func restoreEntry(t time.Time, before, after unix.Timex, notes []string) audit.Entry {
	reason := "start-up: kernel clock state restored"
	for _, n := range notes {
		reason += "; " + n
	}
	return audit.FrequencyEntry(t, clock.RatePPM(before), clock.RatePPM(after), reason, nil, true)
}

// onClockChange is the engine's report of a clock change: journaled,
// counted, and a reason to tell systemd.
func (h *host) onClockChange(c ClockChange) {
	switch c.Kind {
	case ChangeStep:
		h.note.updated = true
		if c.Err == nil {
			h.totals.steps++
			h.totals.stepped += math.Abs(c.Step.Seconds())
		}
	case ChangeUpdate:
		if c.Reason != "drift file" {
			h.note.updated = true
		}
		if c.Slew != 0 && c.Err == nil {
			h.totals.slews++
		}
	case ChangeState:
		h.note.updated = true
	}
	entries, wait, leap := entriesFor(c, entryContext{
		control: h.control, sources: h.sourceNames(c.Sources), preHooks: h.audit.preHooks,
		threshold: h.cfg.Step.Threshold.Duration, proposed: h.proposed.Step, driftFile: h.cfg.DriftFile,
		extReason: h.extReason, leap: h.audit.leap,
	})
	h.audit.leap = leap
	for i, e := range entries {
		if i == 0 {
			h.record(e, wait)
		} else {
			h.record(e, 0)
		}
	}
}

// sourceNames names sources as the journal does: "name (address)".
func (h *host) sourceNames(ids []int) []string {
	var out []string
	for _, id := range ids {
		if m, ok := h.members[id]; ok {
			out = append(out, fmt.Sprintf("%s (%s)", m.Name, m.Addr))
		}
	}
	return out
}

// hookRuns turns a hook report into the journal's form.
func hookRuns(rep stephook.Report, phase string) []audit.HookRun {
	var out []audit.HookRun
	for _, r := range rep.Results {
		hr := audit.HookRun{Name: r.Name, Phase: phase, Result: string(r.Outcome), DurationSeconds: r.Duration.Seconds()}
		if r.Err != nil {
			hr.Error = r.Err.Error()
		}
		out = append(out, hr)
	}
	return out
}

var phases = map[stephook.Kind]string{stephook.PreStep: "pre_step", stephook.PostStep: "post_step", stephook.ExternalStep: "external_step"}

// openJournal opens the audit journal ([audit] journal). A journal that
// cannot be opened stops the start: an unrecorded clock change is what it
// exists to prevent.
func (h *host) openJournal() error {
	path := h.cfg.Audit.Journal
	if path == "" {
		return nil
	}
	// Like the control socket's: made if missing (mode 0750: the journal
	// is for root, the daemon and the auditors' group).
	if err := mkdirs(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("audit journal: %w", err)
	}
	j, err := audit.Open(path, audit.Options{Now: time.Now})
	if err != nil {
		return fmt.Errorf("%w (audit.journal = \"\" runs without one)", err)
	}
	h.journal = j
	h.log.Info("audit journal", "path", path, "head_seq", j.Head().Seq)
	return nil
}

// record queues an entry, waiting for the hooks of kind wait (0: none),
// and writes what is ready.
func (h *host) record(e audit.Entry, wait stephook.Kind) {
	if h.journal == nil {
		return
	}
	h.audit.pending = append(h.audit.pending, pendingEntry{e: e, wait: wait})
	h.flushAudit(false)
}

// hooksDone completes the first entry waiting for rep's hooks.
func (h *host) hooksDone(rep stephook.Report) {
	for i := range h.audit.pending {
		p := &h.audit.pending[i]
		if p.wait == rep.Event.Kind {
			p.e.Hooks = append(p.e.Hooks, hookRuns(rep, phases[rep.Event.Kind])...)
			p.wait = 0
			break
		}
	}
	h.flushAudit(false)
}

// flushAudit writes the pending entries that are ready, in order; with
// all (at exit), every entry, noting the hooks that did not finish.
func (h *host) flushAudit(all bool) {
	for len(h.audit.pending) > 0 {
		p := h.audit.pending[0]
		if p.wait != 0 && !all {
			return
		}
		if p.wait != 0 {
			p.e.Hooks = append(p.e.Hooks, audit.HookRun{Name: p.wait.String() + " hooks", Phase: phases[p.wait], Result: string(stephook.Skipped),
				Error: "not finished when the daemon stopped"})
		}
		h.audit.pending = h.audit.pending[1:]
		h.appendEntry(p.e)
	}
}

// appendEntry writes one entry and logs it with the journal's head (the
// copy off the host that makes truncation evident); an entry that cannot
// be written is logged whole instead.
func (h *host) appendEntry(e audit.Entry) {
	if err := h.journal.Append(e); err != nil {
		line, _ := json.Marshal(e)
		if cause := errors.Unwrap(err); cause == nil || cause.Error() != h.audit.failed {
			h.log.Error("audit journal: entry not written", "path", h.journal.Path(), "err", err)
		}
		if cause := errors.Unwrap(err); cause != nil {
			h.audit.failed = cause.Error()
		}
		h.log.Warn("audit entry", "entry", string(line))
		return
	}
	h.audit.failed = ""
	head := h.journal.Head()
	attrs := []any{"kind", string(e.Kind), "seq", head.Seq, "head", head.Hash, "applied", e.Applied}
	routine := e.Kind == audit.KindSlew || e.Kind == audit.KindFrequency
	now := hostMono()
	if !routine || !h.audit.loudSet || now-h.audit.loud >= headLogInterval {
		if routine {
			h.audit.loud, h.audit.loudSet = now, true
		}
		h.log.Info("audit", attrs...)
		return
	}
	h.log.Debug("audit", attrs...)
}

// totals are the running counters of the metrics.
type totals struct {
	steps, slews        uint64
	stepped             float64
	hookRuns, hookFails map[string]uint64
}

func newTotals() totals {
	return totals{hookRuns: map[string]uint64{}, hookFails: map[string]uint64{}}
}

// countHooks counts a report's hook runs by hook (a DHCP client by its
// kind, an exec hook by its program); dry runs and skipped hooks did not
// run.
func (h *host) countHooks(rep stephook.Report) {
	for _, r := range rep.Results {
		if r.Outcome == stephook.DryRun || r.Outcome == stephook.Skipped {
			continue
		}
		name := r.Name
		if r.Client != "" {
			name = string(r.Client)
		}
		h.totals.hookRuns[name]++
		if r.Outcome == stephook.Failed || r.Outcome == stephook.TimedOut {
			h.totals.hookFails[name]++
		}
	}
}

// metricsSnapshot maps the control socket's snapshot (what ntptool status
// --json shows) and the running totals onto the metrics, so that both
// carry the same values.
func metricsSnapshot(s *control.Snapshot, t totals, adjtimex uint64) *metrics.Snapshot {
	st := s.Status
	m := &metrics.Snapshot{
		Time: s.Time, SyncState: st.SyncState, Synchronized: st.SyncState == control.StateSynchronised, ClockControl: st.ClockControl,
		OffsetSeconds: st.SystemTimeOffsetSeconds, FrequencyPPM: st.FrequencyPPM, SkewPPM: st.SkewPPM,
		RootDelaySeconds: st.RootDelaySeconds, RootDispersionSeconds: st.RootDispersionSeconds,
		RootDistanceSeconds: st.RootDelaySeconds/2 + st.RootDispersionSeconds,
		Stratum:             st.Stratum,
		Leap:                map[string]int{control.LeapNormal: 0, control.LeapInsert: 1, control.LeapDelete: 2, control.LeapUnsynchronised: 3}[st.Leap],
		Totals: metrics.Totals{
			Steps: t.steps, Slews: t.slews, SteppedSeconds: t.stepped,
			HookRuns: maps(t.hookRuns), HookFailures: maps(t.hookFails), AdjtimexCalls: adjtimex,
		},
	}
	for _, src := range s.Sources {
		ms := metrics.Source{Name: src.Name, Address: src.Address, Reach: uint8(src.Reach), PollSeconds: math.Ldexp(1, src.PollLog2),
			Stratum: src.Stratum, State: metricsState[src.State]}
		if ls := src.LastSample; ls != nil {
			ms.OffsetSeconds, ms.DelaySeconds, ms.JitterSeconds = ls.OffsetSeconds, ls.DelaySeconds, ls.JitterSeconds
		}
		m.Sources = append(m.Sources, ms)
	}
	return m
}

var metricsState = map[string]string{
	control.SourceSelected: metrics.StateSelected, control.SourceCombined: metrics.StateCombined,
	control.SourceNotCombined: metrics.StateCandidate, control.SourceFalseticker: metrics.StateFalseticker,
	control.SourceUnreachable: metrics.StateUnreachable, control.SourceTooVariable: metrics.StateTooVariable,
}

func maps(m map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// openMetrics starts the metrics endpoint ([metrics] listen), before the
// privilege drop (the port may be privileged). The NTP server's counters
// are read live at each scrape.
func (h *host) openMetrics() error {
	if h.cfg.Metrics.Listen == "" {
		return nil
	}
	if !metrics.Available {
		return fmt.Errorf("metrics.listen %q: this ntptool was built without metrics (-tags nometrics); set metrics.listen = \"\" or use the full build", h.cfg.Metrics.Listen)
	}
	ln, err := net.Listen("tcp", h.cfg.Metrics.Listen)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if h.srv != nil {
		stats := h.srv.Stats()
		h.metrics.SetLive(func(t *metrics.Totals) {
			s := stats.Snapshot()
			t.ServerRequests, t.ServerReplies, t.KoDSent = s.Requests, s.Replies, s.KoDRate+s.KoDDeny
			t.ServerDrops = map[string]uint64{
				"short": s.DropShort, "bad_version": s.DropVersion, "mode6": s.DropControl, "mode7": s.DropPrivate,
				"bad_mode": s.DropMode, "malformed": s.DropMalformed, "auth": s.DropAuth, "acl": s.DropDenied, "ratelimit": s.DropRate,
			}
		})
	}
	h.metricsOn = true
	log := h.log.With("part", "metrics")
	go func() {
		if err := metrics.ServeHolder(h.ctx, ln, &h.metrics, log); err != nil && h.ctx.Err() == nil {
			log.Error("metrics endpoint stopped", "err", err)
		}
	}()
	return nil
}

// notifyState is systemd's side of the loop.
type notifyState struct {
	ready    bool          // READY=1 was sent
	updated  bool          // something to say since the last STATUS=
	key      string        // the state and source of the last STATUS=
	sent     time.Duration // when it was sent (monotonic)
	held     bool          // a STATUS= is held back, the timer armed
	errCause string        // the last sd_notify error, logged once
}

// statusInterval is the least time between two STATUS= lines about the
// same state and source: an iburst or a pool of fast sources updates the
// clock every few seconds, and systemctl status does not need each.
const statusInterval = 10 * time.Second

// notifyStatus tells systemd about updates: READY=1 with the first,
// STATUS= after the later ones, at once when the state or the source
// changed, else at most every statusInterval (wake sends one held back;
// fired says it did).
func (h *host) notifyStatus(wake *time.Timer, fired bool) {
	if fired {
		h.note.held = false
	}
	if !h.note.updated || h.note.held || !h.notifier.Enabled() {
		return // (without a service manager to tell, no snapshot either)
	}
	snap := h.current()
	line, key := statusLine(snap), snap.Status.SyncState+" "+snap.Status.ReferenceAddress
	now := hostMono()
	switch {
	case !h.note.ready:
		h.note.ready = true
		h.sdNotify(h.notifier.Ready(line))
	case key != h.note.key || now-h.note.sent >= statusInterval:
		h.sdNotify(h.notifier.Status(line))
	default:
		wake.Reset(statusInterval - (now - h.note.sent))
		h.note.held = true
		return
	}
	h.note.updated, h.note.key, h.note.sent = false, key, now
}

// statusLine is what systemctl status shows of the daemon.
func (h *host) statusLine() string { return statusLine(h.current()) }

// statusLine describes a snapshot in one line: the state, the source and
// the offset.
func statusLine(s *control.Snapshot) string {
	st := s.Status
	var line string
	switch st.SyncState {
	case control.StateSynchronised:
		line = notify.FormatStatus(true, st.SystemTimeOffsetSeconds, fmt.Sprintf("%s (%s)", st.ReferenceName, st.ReferenceAddress))
	case control.StateHoldover:
		line = fmt.Sprintf("holdover: no selectable source, running on the learned frequency (%+.3f ppm)", st.FrequencyPPM)
	default:
		best := ""
		for _, src := range s.Sources {
			if src.State == control.SourceSelected {
				best = fmt.Sprintf("%s (%s)", src.Name, src.Address)
			}
		}
		line = notify.FormatStatus(false, st.SystemTimeOffsetSeconds, best)
	}
	if st.LastError != "" {
		line += "; " + st.LastError
	}
	if !st.ClockControl {
		line += " [no clock control]"
	}
	return line
}

// sdNotify logs a failed notification, once per cause.
func (h *host) sdNotify(err error) {
	if err == nil {
		h.note.errCause = ""
		return
	}
	if err.Error() != h.note.errCause {
		h.log.Warn("systemd notification failed", "err", err)
	}
	h.note.errCause = err.Error()
}

// prepareUser looks up [run] user, and when this process is about to
// become it, creates the directories the daemon writes that do not exist
// yet (drift file, journal, control socket), owned by the user: once it is
// the user it must rename its drift file and journal head there, reopen
// the journal after a rotation, and remove its socket. Directories that
// exist are left as they are (checkWritable says which the user cannot
// write).
func (h *host) prepareUser() error {
	if h.cfg.Run.User == "" {
		return nil
	}
	uid, gid, err := privdrop.LookupUser(h.cfg.Run.User)
	if err != nil {
		return err
	}
	if uid == os.Geteuid() && gid == os.Getegid() {
		return nil // already the user (systemd's User=)
	}
	h.runUID, h.runGID = uid, gid
	for _, d := range h.writableDirs() {
		if _, err := os.Stat(d.path); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := mkdirs(d.path, d.perm); err != nil {
			return fmt.Errorf("create %s for %s: %w", d.path, d.what, err)
		}
		if err := os.Lchown(d.path, uid, gid); err != nil {
			return fmt.Errorf("give %s to %s: %w", d.path, h.cfg.Run.User, err)
		}
		h.log.Info("directory created for the run user", "path", d.path, "user", h.cfg.Run.User, "for", d.what)
	}
	return nil
}

// mkdirs makes dir with perm and its missing parents with 0755, as
// /var/log and /var/lib are: a parent with the leaf's 0750, owned by
// root, would keep the run user out of the directory made for it. The
// modes are set after each mkdir, so that the umask cannot narrow them.
func mkdirs(dir string, perm fs.FileMode) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := mkdirs(parent, 0o755); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return err
	}
	return os.Chmod(dir, perm)
}

type writableDir struct {
	path, what string
	perm       fs.FileMode
}

// writableDirs are the directories the daemon writes after the drop.
func (h *host) writableDirs() []writableDir {
	var out []writableDir
	for _, d := range []writableDir{
		{h.cfg.DriftFile, "the drift file", 0o750},
		{h.cfg.Audit.Journal, "the audit journal", 0o750},
		{h.cfg.Control.Socket, "the control socket", 0o755},
	} {
		if d.path != "" {
			d.path = filepath.Dir(d.path)
			out = append(out, d)
		}
	}
	return out
}

// dropPrivileges switches to [run] user keeping only the capabilities the
// configuration needs, and restricts file access with Landlock
// (privdrop), once everything that needs root is open. Without [run] user
// it changes nothing (under systemd the unit does it).
func (h *host) dropPrivileges() error {
	if h.cfg.Run.User == "" {
		return nil
	}
	if h.journal != nil && h.runUID >= 0 {
		// Ours once we are the user: reopening it after a SIGHUP needs it.
		if err := h.journal.Chown(h.runUID, -1); err != nil {
			return err
		}
	}
	cfg := *h.cfg
	cfg.Clock.Control = h.control
	plan := privdrop.PlanFor(&cfg, h.path)
	if h.helper != nil {
		plan = privdrop.PlanWithHookHelper(&cfg, h.path)
	}
	res, err := privdrop.Apply(plan, h.log)
	if err != nil {
		return fmt.Errorf("privilege drop: %w", err)
	}
	for _, d := range h.writableDirs() {
		if err := unix.Access(d.path, unix.W_OK|unix.X_OK); err != nil {
			h.log.Error("the run user cannot write a directory the daemon needs", "path", d.path, "for", d.what, "user", h.cfg.Run.User, "err", err)
		}
	}
	if h.helper == nil && privdrop.HooksConfigured(h.cfg.Hooks) && res.UID != 0 {
		h.log.Warn("step hooks run as the unprivileged daemon user: DHCP renewals need root and will fail (run ntptool run as root with [run] user so that a privileged helper runs them)", "user", h.cfg.Run.User)
	}
	return nil
}
