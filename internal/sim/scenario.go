package sim

import (
	"bytes"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/config"
	"github.com/ntptool/ntptool/daemon"
	"github.com/ntptool/ntptool/driftfile"
)

// Scenario is a scenario file: a client clock, a network, servers, events
// during the run and the client's ntptool configuration. Keys (exactly
// these): name, seeds = [first, last], duration (s); [clock] offset (s),
// freq (fraction, 1e-4 = +100 ppm), wander (fraction/√s), drift (initial
// drift-file content, optional); [network] base_delay, jitter (s),
// jitter_asymmetry ([0, 0.5)), loss (fraction); [[servers]] offset (s)
// and optional base_delay/jitter overrides; [[events]] at (s), server
// (1-based) and one of offset (the server's clock error from then on, s),
// down = true (it stops answering), up = true (it answers again); [hooks]
// seconds (how long the pre-step hooks take before a step is committed),
// fail (they fail: the client's hooks.on_failure = "abort" cancels the
// step and the engine slews instead, "hold" cancels it and leaves the
// clock alone); [client]
// config (the client's TOML, whose sources name the servers s1, s2, … in
// order).
type Scenario struct {
	Name     string  `toml:"name"`
	Seeds    []int   `toml:"seeds"`
	Duration float64 `toml:"duration"`
	Clock    struct {
		Offset float64 `toml:"offset"`
		Freq   float64 `toml:"freq"`
		Wander float64 `toml:"wander"`
		Drift  *string `toml:"drift"`
	} `toml:"clock"`
	Network struct {
		BaseDelay       float64 `toml:"base_delay"`
		Jitter          float64 `toml:"jitter"`
		JitterAsymmetry float64 `toml:"jitter_asymmetry"`
		Loss            float64 `toml:"loss"`
	} `toml:"network"`
	Servers []struct {
		Offset    float64  `toml:"offset"`
		BaseDelay *float64 `toml:"base_delay"`
		Jitter    *float64 `toml:"jitter"`
	} `toml:"servers"`
	Events []Event `toml:"events"`
	Hooks  struct {
		Seconds float64 `toml:"seconds"`
		Fail    bool    `toml:"fail"`
	} `toml:"hooks"`
	Client struct {
		Config string `toml:"config"`
	} `toml:"client"`
	// Leap puts a UTC leap second in the run, and Epoch sets the true UTC
	// time at T = 0 (default DefaultEpochUnix); they have no keys in the
	// file (tests set them).
	Leap  *LeapSecond `toml:"-"`
	Epoch time.Time   `toml:"-"`
	// SaveDrift receives the engine's hourly drift-file saves (tests set
	// it; it has no key in the file).
	SaveDrift func(driftfile.Drift) `toml:"-"`
	// Logger, when not nil, receives the engine's log (ntptool sim
	// --log-level sets it; it has no key in the file).
	Logger *slog.Logger `toml:"-"`
	// WrapKernel, when not nil, wraps the client's kernel before the
	// engine gets it (tests make adjtimex fail with it); OnCommit, when
	// not nil, sees each committed step with the clock's true offset just
	// before it. Neither has a key in the file.
	WrapKernel func(clock.Kernel) clock.Kernel                    `toml:"-"`
	OnCommit   func(res daemon.StepResult, offsetBeforeS float64) `toml:"-"`
	// OnClockChange, when not nil, receives the engine's clock changes
	// (daemon.Options.OnClockChange); it has no key in the file.
	OnClockChange func(daemon.ClockChange) `toml:"-"`

	// Derived by LoadScenario.
	client *config.Config
	drift  *driftfile.Drift
	// sourceServer maps a client source index to a server index.
	sourceServer []int
}

// Event changes a server during a run.
type Event struct {
	// At is the true time of the event (s).
	At float64 `toml:"at"`
	// Server is the server it changes, 1-based (s1 is 1).
	Server int `toml:"server"`
	// Offset, when set, is the server's clock error from then on (s).
	Offset *float64 `toml:"offset"`
	// Down stops the server answering; Up makes it answer again.
	Down bool `toml:"down"`
	Up   bool `toml:"up"`
}

// maxSeeds bounds the seeds a scenario runs.
const maxSeeds = 10000

// LoadScenario reads and checks a scenario file.
func LoadScenario(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseScenario(data, path)
}

// ParseScenario parses and checks a scenario; name is used in errors.
func ParseScenario(data []byte, name string) (*Scenario, error) {
	var sc Scenario
	// The defaults of SIMULATION.md's reference scenarios.
	sc.Seeds = []int{1, 1}
	sc.Duration = 50000
	sc.Network.BaseDelay, sc.Network.Jitter = 100e-6, 100e-6
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&sc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("%s: unknown keys: %s", name, strings.Join(keys, ", "))
	}
	if err := sc.check(name); err != nil {
		return nil, err
	}
	return &sc, nil
}

func (sc *Scenario) check(name string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s", name, ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	// Every number must be finite and sensible before it becomes a
	// duration (no wrap-around, no NaN that differs by architecture).
	type bound struct {
		key       string
		v, lo, hi float64
	}
	ranges := []bound{
		{"duration", sc.Duration, 1, 1e7},
		{"clock.offset", sc.Clock.Offset, -1e6, 1e6},
		{"clock.freq", sc.Clock.Freq, -0.1, 0.1},
		{"clock.wander", sc.Clock.Wander, 0, 1e-4},
		{"network.base_delay", sc.Network.BaseDelay, 0, 10},
		{"network.jitter", sc.Network.Jitter, 0, 10},
		{"network.jitter_asymmetry", sc.Network.JitterAsymmetry, 0, 0.4999},
		{"network.loss", sc.Network.Loss, 0, 1},
	}
	for i, srv := range sc.Servers {
		ranges = append(ranges, bound{fmt.Sprintf("servers[%d].offset (s%d)", i, i+1), srv.Offset, -1e6, 1e6})
		for key, p := range map[string]*float64{"base_delay": srv.BaseDelay, "jitter": srv.Jitter} {
			if p != nil {
				ranges = append(ranges, bound{fmt.Sprintf("servers[%d].%s (s%d)", i, key, i+1), *p, 0, 10})
			}
		}
	}
	ranges = append(ranges, bound{"hooks.seconds", sc.Hooks.Seconds, 0, 3600})
	for i, ev := range sc.Events {
		ranges = append(ranges, bound{fmt.Sprintf("events[%d].at", i), ev.At, 0, sc.Duration})
		if ev.Offset != nil {
			ranges = append(ranges, bound{fmt.Sprintf("events[%d].offset", i), *ev.Offset, -1e6, 1e6})
		}
	}
	for _, r := range ranges {
		if !(r.v >= r.lo && r.v <= r.hi) { // also false for NaN
			return bad("%s = %g: want a number in [%g, %g]", r.key, r.v, r.lo, r.hi)
		}
	}
	switch {
	case len(sc.Seeds) != 2 || sc.Seeds[0] < 0 || sc.Seeds[1] < sc.Seeds[0] || sc.Seeds[1] > math.MaxInt32:
		return bad("seeds must be [first, last] with 0 <= first <= last < 2^31")
	case sc.Seeds[1]-sc.Seeds[0] >= maxSeeds:
		return bad("at most %d seeds", maxSeeds)
	case len(sc.Servers) == 0:
		return bad("no [[servers]]")
	}
	for i, ev := range sc.Events {
		kinds := 0
		for _, set := range []bool{ev.Offset != nil, ev.Down, ev.Up} {
			if set {
				kinds++
			}
		}
		switch {
		case ev.Server < 1 || ev.Server > len(sc.Servers):
			return bad("events[%d].server = %d: want one of 1..%d", i, ev.Server, len(sc.Servers))
		case kinds != 1:
			return bad("events[%d]: want exactly one of offset, down = true, up = true", i)
		}
	}
	if sc.Clock.Drift != nil {
		text := *sc.Clock.Drift
		if !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		d, err := driftfile.Parse([]byte(text))
		if err != nil {
			return bad("clock.drift: %v", err)
		}
		sc.drift = &d
	}
	cfg, err := config.Parse([]byte(sc.Client.Config), name+" [client] config")
	if err != nil {
		return err
	}
	sc.client = cfg
	for i, src := range cfg.Sources {
		var k int
		if _, err := fmt.Sscanf(src.Server, "s%d", &k); err != nil || k < 1 || k > len(sc.Servers) || src.Server != fmt.Sprintf("s%d", k) {
			return bad("[client] source %d: server %q must name one of s1..s%d", i+1, src.Server, len(sc.Servers))
		}
		sc.sourceServer = append(sc.sourceServer, k-1)
	}
	// The clock, links and servers are checked by building the simulation.
	if _, err := New(sc.config(sc.Seeds[0])); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// links returns each server's link.
func (sc *Scenario) links() []LinkConfig {
	var out []LinkConfig
	for _, s := range sc.Servers {
		l := LinkConfig{
			BaseDelay: durationS(sc.Network.BaseDelay),
			Jitter:    durationS(sc.Network.Jitter),
			Asymmetry: sc.Network.JitterAsymmetry,
			Loss:      sc.Network.Loss,
		}
		if s.BaseDelay != nil {
			l.BaseDelay = durationS(*s.BaseDelay)
		}
		if s.Jitter != nil {
			l.Jitter = durationS(*s.Jitter)
		}
		out = append(out, l)
	}
	return out
}

// config builds the simulation for one seed.
func (sc *Scenario) config(seed int) Config {
	cfg := Config{
		Seed: uint32(seed),
		Clock: ClockConfig{
			Epoch:         sc.Epoch,
			InitialOffset: durationS(sc.Clock.Offset),
			F0:            sc.Clock.Freq,
			Wander:        sc.Clock.Wander,
		},
		Leap: sc.Leap,
	}
	for i, l := range sc.links() {
		cfg.Servers = append(cfg.Servers, ServerConfig{Offset: durationS(sc.Servers[i].Offset), Link: l})
	}
	return cfg
}

func durationS(s float64) time.Duration { return time.Duration(s * 1e9) }
