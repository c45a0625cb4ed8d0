package pool

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"time"

	"github.com/ntptool/ntptool/config"
)

// Spec is one configured source: a server or a pool name.
type Spec struct {
	// Name is a host name or an IP address literal (never resolved).
	Name string
	// Pool is set for a pool (several addresses), clear for a server.
	Pool bool
	// Port is the server port.
	Port uint16
	// MaxSources is how many addresses a pool contributes (≥ 1).
	MaxSources int
}

// Specs maps the configuration's sources to Specs, in order.
func Specs(sources []config.Source) []Spec {
	out := make([]Spec, 0, len(sources))
	for _, s := range sources {
		sp := Spec{Name: s.Server, Port: uint16(s.Port), MaxSources: 1}
		if s.Pool != "" {
			sp = Spec{Name: s.Pool, Pool: true, Port: uint16(s.Port), MaxSources: max(s.MaxSources, 1)}
		}
		out = append(out, sp)
	}
	return out
}

// Options tunes a Manager. The zero value is the documented behaviour.
type Options struct {
	// FalsetickerPolls is how many consecutive reports as a falseticker
	// make a pool member replaced. Default 8 (as many polls as the reach
	// register holds).
	FalsetickerPolls int
	// ResolveInterval is the least time between two lookups of one name
	// once it has resolved. Default 30 min.
	ResolveInterval time.Duration
	// RetryInterval is the first retry of a name that has never resolved
	// (no network at boot yet); it doubles up to ResolveInterval.
	// Default 16 s.
	RetryInterval time.Duration
}

// UnreachablePolls is how many unanswered polls in a row make a source
// unreachable: the whole reach register.
const UnreachablePolls = 8

// maxBad bounds the addresses a spec remembers as replaced.
const maxBad = 64

// never is a time that does not come.
const never = time.Duration(math.MaxInt64)

// Kind is what an Action does.
type Kind int

const (
	// Add: start a source with ID at Addr, configured as Specs[Spec].
	Add Kind = iota
	// Remove: stop source ID and close its socket.
	Remove
)

// String returns "add" or "remove".
func (k Kind) String() string {
	if k == Add {
		return "add"
	}
	return "remove"
}

// Action is one change to the set of sources.
type Action struct {
	Kind Kind
	// ID identifies the source in the engine and the transport; a
	// Manager never reuses one.
	ID int
	// Spec is the index of the source's configuration (poll bounds,
	// iburst) in the Specs given to New or the last Reconfigure; for a
	// Remove, the index it had when the source was added or last
	// reconfigured.
	Spec int
	// Name is the configured name; Addr the address.
	Name string
	Addr netip.AddrPort
	// Reason says why, for the log.
	Reason string
}

// Lookup is a DNS lookup for the caller to run (Lookuper does).
type Lookup struct {
	// Key identifies the spec the lookup is for; hand it back in Result.
	Key int
	// Name is the host name to resolve (IPv4 and IPv6).
	Name string
}

// Result is the outcome of a Lookup.
type Result struct {
	Key   int
	Name  string
	Addrs []netip.Addr
	Err   error
}

// Plan is what the caller does after a call: apply Actions in order,
// start Lookups.
type Plan struct {
	Actions []Action
	Lookups []Lookup
}

// Health is what the engine says about one source after one of its polls.
type Health struct {
	// Reach is the reach register (bit 0: the latest poll was answered).
	Reach uint8
	// Polls counts the polls made since the source was added.
	Polls int
	// Falseticker: the last selection rejected the source as a
	// falseticker.
	Falseticker bool
}

// Member is one source in use.
type Member struct {
	ID   int
	Spec int
	Name string
	Addr netip.AddrPort
	// Pool is set for a pool member.
	Pool bool
	// Unreachable and Falseticker say it is due for replacement (a pool
	// member) or re-resolution (a server).
	Unreachable, Falseticker bool
}

// spec is a configured source and its resolution state.
type spec struct {
	Spec
	key      int
	index    int
	literal  bool // an address: never resolved
	pending  bool // a lookup is in flight
	tried    int  // lookups made
	failures int  // consecutive failed lookups
	resolved bool // a lookup has succeeded
	last     time.Duration
	due      time.Duration // when a lookup is wanted next
	spares   []netip.Addr  // from the last lookup, not in use
	bad      []netip.Addr  // replaced addresses, not used again
}

// member is a source in use.
type member struct {
	id       int
	spec     *spec
	addr     netip.AddrPort
	dead     bool
	falseRun int
}

// Manager decides the sources' addresses. It is not safe for concurrent
// use: the daemon's loop owns it.
type Manager struct {
	opt     Options
	specs   []*spec
	members []*member // in order of addition
	nextID  int
	nextKey int
}

// New returns a Manager for specs; Start makes its first plan.
func New(specs []Spec, opt Options) *Manager {
	if opt.FalsetickerPolls <= 0 {
		opt.FalsetickerPolls = 8
	}
	if opt.ResolveInterval <= 0 {
		opt.ResolveInterval = 30 * time.Minute
	}
	if opt.RetryInterval <= 0 {
		opt.RetryInterval = 16 * time.Second
	}
	m := &Manager{opt: opt, nextID: 1}
	for i, sp := range specs {
		m.specs = append(m.specs, m.newSpec(sp, i))
	}
	return m
}

func (m *Manager) newSpec(sp Spec, index int) *spec {
	m.nextKey++
	s := &spec{Spec: sp, key: m.nextKey, index: index, due: never}
	if s.MaxSources < 1 || !s.Pool {
		s.MaxSources = 1
	}
	_, err := netip.ParseAddr(sp.Name)
	s.literal = err == nil
	return s
}

// Start adds the address literals and asks for the first lookups.
func (m *Manager) Start(now time.Duration) Plan {
	var p Plan
	for _, s := range m.specs {
		m.startSpec(s, now, &p)
	}
	return p
}

func (m *Manager) startSpec(s *spec, now time.Duration, p *Plan) {
	if s.literal {
		a, _ := netip.ParseAddr(s.Name)
		if ap := netip.AddrPortFrom(a.Unmap(), s.Port); !m.inUse(ap) {
			m.add(s, ap, "address literal", p)
		}
		return
	}
	s.due = now
	m.lookups(now, p)
}

// Specs returns the specs in their current order.
func (m *Manager) Specs() []Spec {
	out := make([]Spec, len(m.specs))
	for i, s := range m.specs {
		out[i] = s.Spec
	}
	return out
}

// Members returns the sources in use, in order of addition.
func (m *Manager) Members() []Member {
	out := make([]Member, 0, len(m.members))
	for _, mb := range m.members {
		out = append(out, Member{
			ID: mb.id, Spec: mb.spec.index, Name: mb.spec.Name, Addr: mb.addr, Pool: mb.spec.Pool,
			Unreachable: mb.dead, Falseticker: mb.falseRun >= m.opt.FalsetickerPolls,
		})
	}
	return out
}

// NextWakeup is the monotonic time at which Tick has lookups to start
// (math.MaxInt64: none planned).
func (m *Manager) NextWakeup() time.Duration {
	next := never
	for _, s := range m.specs {
		if !s.pending {
			next = min(next, s.due)
		}
	}
	return next
}

// Tick starts the lookups that are due.
func (m *Manager) Tick(now time.Duration) Plan {
	var p Plan
	m.lookups(now, &p)
	return p
}

// lookups starts the due lookups.
func (m *Manager) lookups(now time.Duration, p *Plan) {
	for _, s := range m.specs {
		if s.pending || s.literal || s.due > now {
			continue
		}
		s.pending, s.due, s.last = true, never, now
		s.tried++
		p.Lookups = append(p.Lookups, Lookup{Key: s.key, Name: s.Name})
	}
}

// Report takes a source's health after one of its polls and replaces or
// re-resolves what it must.
func (m *Manager) Report(id int, h Health, now time.Duration) Plan {
	var p Plan
	mb := m.member(id)
	if mb == nil {
		return p // removed since
	}
	mb.dead = h.Polls >= UnreachablePolls && h.Reach == 0
	if h.Falseticker {
		mb.falseRun++
	} else {
		mb.falseRun = 0
	}
	s := mb.spec
	if m.needsReplacement(mb) && s.Pool && len(s.spares) > 0 {
		m.replaceFromSpares(s, &p)
	}
	m.schedule(s, now)
	m.lookups(now, &p)
	return p
}

// needsReplacement: a pool member dead or a persistent falseticker, a
// server dead (a server's falsetickers stay: the operator chose it).
func (m *Manager) needsReplacement(mb *member) bool {
	return mb.dead || mb.spec.Pool && mb.falseRun >= m.opt.FalsetickerPolls
}

// reason says why mb is replaced.
func (m *Manager) reason(mb *member) string {
	if mb.dead {
		return fmt.Sprintf("unreachable: no reply to the last %d polls", UnreachablePolls)
	}
	return fmt.Sprintf("falseticker in %d selections in a row", m.opt.FalsetickerPolls)
}

// Resolved takes a lookup's result.
func (m *Manager) Resolved(r Result, now time.Duration) Plan {
	var p Plan
	s := m.specByKey(r.Key)
	if s == nil || !s.pending {
		return p // from before a reconfiguration
	}
	s.pending = false
	fresh := m.fresh(s, r.Addrs)
	if r.Err != nil || len(r.Addrs) == 0 {
		s.failures++
	} else {
		s.failures, s.resolved = 0, true
	}
	if s.Pool {
		if len(fresh) > 0 {
			s.spares = fresh // a failed lookup keeps the old spares
		}
		m.replaceFromSpares(s, &p)
		m.fill(s, "from the pool's name", &p)
	} else if len(fresh) > 0 {
		switch cur := m.membersOf(s); {
		case len(cur) == 0:
			m.add(s, netip.AddrPortFrom(fresh[0], s.Port), "resolved", &p)
		case cur[0].dead:
			m.replace(cur[0], netip.AddrPortFrom(fresh[0], s.Port), "unreachable; the name now resolves to another address", &p)
		}
	}
	m.schedule(s, now)
	m.lookups(now, &p)
	return p
}

// fresh filters a lookup's addresses: unmapped, not in use by any source
// on this port, not replaced before, without duplicates, in order.
func (m *Manager) fresh(s *spec, addrs []netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range addrs {
		a = a.Unmap()
		if !a.IsValid() || a.IsUnspecified() || slices.Contains(out, a) || slices.Contains(s.bad, a) || m.inUse(netip.AddrPortFrom(a, s.Port)) {
			continue
		}
		out = append(out, a)
	}
	return out
}

// replaceFromSpares swaps a pool's members that need it for spares.
func (m *Manager) replaceFromSpares(s *spec, p *Plan) {
	for _, mb := range m.membersOf(s) {
		if !m.needsReplacement(mb) {
			continue
		}
		a, ok := m.takeSpare(s)
		if !ok {
			return
		}
		m.replace(mb, a, m.reason(mb), p)
	}
}

// fill adds spares while the pool has fewer than maxsources members.
func (m *Manager) fill(s *spec, why string, p *Plan) {
	for m.count(s) < s.MaxSources {
		a, ok := m.takeSpare(s)
		if !ok {
			return
		}
		m.add(s, a, why, p)
	}
}

// takeSpare takes the next spare that is still free (another source may
// have taken it since the lookup).
func (m *Manager) takeSpare(s *spec) (netip.AddrPort, bool) {
	for len(s.spares) > 0 {
		a := netip.AddrPortFrom(s.spares[0], s.Port)
		s.spares = s.spares[1:]
		if !m.inUse(a) {
			return a, true
		}
	}
	return netip.AddrPort{}, false
}

// replace removes mb and adds addr in its place.
func (m *Manager) replace(mb *member, addr netip.AddrPort, why string, p *Plan) {
	s := mb.spec
	m.remove(mb, why, p)
	s.bad = append(s.bad, mb.addr.Addr())
	if len(s.bad) > maxBad {
		s.bad = s.bad[len(s.bad)-maxBad:]
	}
	m.add(s, addr, "replaces "+mb.addr.String(), p)
}

// schedule plans s's next lookup: wanted while a pool lacks members or
// has members to replace and no spares, or a server has no address or a
// dead one; no sooner than ResolveInterval after the last lookup once the
// name has resolved, and with a doubling back-off before.
func (m *Manager) schedule(s *spec, now time.Duration) {
	s.due = never
	if s.literal || s.pending || !m.wants(s) {
		return
	}
	gap := m.opt.ResolveInterval
	if !s.resolved {
		gap = m.opt.RetryInterval << min(max(s.failures-1, 0), 20)
		gap = min(gap, m.opt.ResolveInterval)
	}
	s.due = max(now, s.last+gap)
	if s.tried == 0 {
		s.due = now
	}
}

func (m *Manager) wants(s *spec) bool {
	members := m.membersOf(s)
	if len(members) < s.MaxSources {
		return true
	}
	for _, mb := range members {
		if m.needsReplacement(mb) {
			return true
		}
	}
	return false
}

// Reconfigure takes a new configuration (SIGHUP): sources whose name,
// kind and port are unchanged keep their members (and the engine keeps
// their state); removed ones are removed; new ones start. A pool whose
// maxsources went down loses its newest members, unhealthy ones first.
func (m *Manager) Reconfigure(specs []Spec, now time.Duration) Plan {
	var p Plan
	old := m.specs
	m.specs = nil
	var started []*spec
	for i, sp := range specs {
		ns := m.newSpec(sp, i)
		if j := slices.IndexFunc(old, func(o *spec) bool { return o != nil && o.Name == ns.Name && o.Pool == ns.Pool && o.Port == ns.Port }); j >= 0 {
			o := old[j]
			old[j] = nil
			o.index, o.MaxSources = i, ns.MaxSources
			m.specs = append(m.specs, o)
			continue
		}
		m.specs = append(m.specs, ns)
		started = append(started, ns)
	}
	for _, o := range old {
		if o == nil {
			continue
		}
		for _, mb := range m.membersOf(o) {
			m.remove(mb, "removed from the configuration", &p)
		}
	}
	for _, s := range m.specs {
		members := m.membersOf(s)
		slices.SortStableFunc(members, func(a, b *member) int { // healthy and old first
			ra, rb := m.needsReplacement(a), m.needsReplacement(b)
			switch {
			case ra != rb && ra:
				return 1
			case ra != rb:
				return -1
			}
			return a.id - b.id
		})
		for _, mb := range members[min(len(members), s.MaxSources):] {
			m.remove(mb, "maxsources lowered", &p)
		}
		if s.Pool {
			m.fill(s, "maxsources raised", &p)
		}
	}
	for _, s := range started {
		m.startSpec(s, now, &p)
	}
	for _, s := range m.specs {
		if !slices.Contains(started, s) {
			m.schedule(s, now)
		}
	}
	m.lookups(now, &p)
	return p
}

func (m *Manager) add(s *spec, addr netip.AddrPort, why string, p *Plan) {
	mb := &member{id: m.nextID, spec: s, addr: addr}
	m.nextID++
	m.members = append(m.members, mb)
	p.Actions = append(p.Actions, Action{Kind: Add, ID: mb.id, Spec: s.index, Name: s.Name, Addr: addr, Reason: why})
}

func (m *Manager) remove(mb *member, why string, p *Plan) {
	m.members = slices.DeleteFunc(m.members, func(x *member) bool { return x == mb })
	p.Actions = append(p.Actions, Action{Kind: Remove, ID: mb.id, Spec: mb.spec.index, Name: mb.spec.Name, Addr: mb.addr, Reason: why})
}

func (m *Manager) member(id int) *member {
	for _, mb := range m.members {
		if mb.id == id {
			return mb
		}
	}
	return nil
}

func (m *Manager) membersOf(s *spec) []*member {
	var out []*member
	for _, mb := range m.members {
		if mb.spec == s {
			out = append(out, mb)
		}
	}
	return out
}

func (m *Manager) count(s *spec) int { return len(m.membersOf(s)) }

func (m *Manager) inUse(a netip.AddrPort) bool {
	return slices.ContainsFunc(m.members, func(mb *member) bool { return mb.addr == a })
}

func (m *Manager) specByKey(key int) *spec {
	for _, s := range m.specs {
		if s.key == key {
			return s
		}
	}
	return nil
}
