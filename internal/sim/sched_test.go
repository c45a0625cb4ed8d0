package sim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func newTestSim(t *testing.T, cfg Config) *Sim {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func oneServer() Config {
	return Config{Seed: 1, Clock: ClockConfig{F0: 1e-4, Wander: 1e-9}, Servers: []ServerConfig{{Link: DefaultLinkConfig()}}}
}

func TestSchedulerOrder(t *testing.T) {
	s := newTestSim(t, Config{})
	var log []string
	rec := func(name string) func() {
		return func() { log = append(log, fmt.Sprintf("%s@%v", name, s.Now())) }
	}
	s.At(2*time.Second, rec("b1"))
	s.At(time.Second/2, rec("a"))
	s.At(2*time.Second, rec("b2"))
	stopped := s.At(2*time.Second, rec("stopped"))
	s.At(2*time.Second, func() {
		rec("b3")()
		s.At(s.Now(), rec("b5 (scheduled now, after the due ones)"))
		s.At(0, rec("b6 (in the past: now)"))
	})
	s.At(2*time.Second, rec("b4"))
	s.AtMonotonic(2*time.Second, rec("m (monotonic, same instant, scheduled later)"))
	s.At(3*time.Second, rec("c"))
	if !stopped.Stop() || stopped.Stop() {
		t.Error("Stop: want true then false")
	}
	s.RunUntil(2 * time.Second)
	s.At(2*time.Second, rec("d (after the first RunUntil)"))
	s.RunUntil(5 * time.Second)
	want := []string{
		"a@500ms", "b1@2s", "b2@2s", "b3@2s", "b4@2s",
		"m (monotonic, same instant, scheduled later)@2s",
		"b5 (scheduled now, after the due ones)@2s", "b6 (in the past: now)@2s",
		"d (after the first RunUntil)@2s", "c@3s",
	}
	if diff := cmp.Diff(want, log); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestSamplesBeforeEvents checks the per-second sample is taken after the
// kernel update and before the events of that second.
func TestSamplesBeforeEvents(t *testing.T) {
	s := newTestSim(t, Config{})
	s.At(3*time.Second, func() {
		adjtimex(t, s.Client(), unix.Timex{Modes: unix.ADJ_SETOFFSET | unix.ADJ_NANO, Time: unix.Timeval{Usec: 500000000}})
	})
	var got []Sample
	s.OnSample(func(smp Sample) { got = append(got, smp) })
	for i := 0; i <= 5; i++ {
		s.RunUntil(time.Duration(i) * time.Second)
	}
	want := []Sample{
		{T: 0}, {T: time.Second}, {T: 2 * time.Second},
		{T: 3 * time.Second},
		{T: 4 * time.Second, OffsetS: 0.5, Adjustments: 1},
		{T: 5 * time.Second, OffsetS: 0.5, Adjustments: 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("samples (-want +got):\n%s", diff)
	}
}

func TestAtMonotonic(t *testing.T) {
	tests := []struct {
		name     string
		f0       float64
		freqPPM  float64 // set at 1.5 s
		deadline time.Duration
	}{
		{"fast clock", 1e-3, 0, 10 * time.Second},
		{"slow clock", -1e-3, 0, 10 * time.Second},
		{"frequency changed while armed", 1e-4, -500, 100*time.Second + 1},
		{"already due", 0, 0, 0},
		{"never", -1e-3, 0, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSim(t, Config{Clock: ClockConfig{F0: tt.f0}})
			s.At(sec(1.5), func() {
				adjtimex(t, s.Client(), unix.Timex{Modes: unix.ADJ_FREQUENCY, Freq: int64(tt.freqPPM * 65536)})
			})
			var firedAt time.Duration = -1
			var mono time.Duration
			s.AtMonotonic(tt.deadline, func() {
				firedAt = s.Now()
				_, mono = s.Client().Now()
			})
			s.RunUntil(200 * time.Second)
			if tt.deadline == math.MaxInt64 {
				if firedAt >= 0 {
					t.Errorf("fired at %v", firedAt)
				}
				return
			}
			if firedAt < 0 {
				t.Fatal("did not fire")
			}
			if mono < tt.deadline {
				t.Errorf("fired early: monotonic %v < %v", mono, tt.deadline)
			}
			// Not late either: 1 ns earlier the clock had not got there.
			if firedAt > 0 {
				k := newTestKernel(t, ClockConfig{F0: tt.f0})
				k.AdvanceTo(min(sec(1.5), firedAt-1))
				adjtimex(t, k, unix.Timex{Modes: unix.ADJ_FREQUENCY, Freq: int64(tt.freqPPM * 65536)})
				k.AdvanceTo(firedAt - 1)
				if _, m := k.Now(); m >= tt.deadline {
					t.Errorf("fired late at %v: monotonic was %v at %v", firedAt, m, firedAt-1)
				}
			}
		})
	}
}

func TestRunUntilFromEventPanics(t *testing.T) {
	s := newTestSim(t, Config{})
	var recovered any
	s.At(time.Second, func() {
		defer func() { recovered = recover() }()
		s.RunUntil(2 * time.Second)
	})
	s.RunUntil(3 * time.Second)
	if recovered == nil {
		t.Error("RunUntil inside an event did not panic")
	}
}

// request builds a client request (mode 3, version vn, poll 6) whose
// transmit timestamp carries tag.
func request(vn byte, tag uint64) []byte {
	p := make([]byte, 48)
	p[0] = vn<<3 | 3
	p[2] = 6
	binary.BigEndian.PutUint64(p[40:], tag)
	return p
}

// ntpToTime decodes an NTP timestamp of era 0.
func ntpToTime(ts uint64) time.Time {
	secs := int64(ts>>32) - ntpEraOffsetS
	frac := int64((ts&0xffffffff)*uint64(time.Second)+1<<31) >> 32
	return time.Unix(secs, frac).UTC()
}

type delivery struct {
	Server int
	RX     time.Time
	Reply  []byte
}

func TestServerExchange(t *testing.T) {
	cfg := Config{
		Seed:  5,
		Clock: ClockConfig{InitialOffset: -2 * time.Millisecond},
		Servers: []ServerConfig{
			{Link: DefaultLinkConfig()},
			{Offset: 250 * time.Millisecond, Stratum: 3, RefID: [4]byte{10, 0, 0, 1}, PrecisionLog2: -25, Leap: 1,
				RootDelay: time.Second / 2, RootDispersion: time.Second / 4,
				Link: LinkConfig{BaseDelay: time.Millisecond, Jitter: 300 * time.Microsecond, Asymmetry: 0.2}},
		},
	}
	s := newTestSim(t, cfg)
	// The same noise, drawn directly, gives the delays to expect.
	noise := NewNoise(cfg.Seed, 2)
	var got []delivery
	s.SetReceiver(func(server int, pkt []byte, rx time.Time, _ time.Duration) {
		got = append(got, delivery{server, rx, pkt})
	})
	sendAt := []time.Duration{sec(10.25), sec(10.25), sec(20)}
	to := []int{1, 0, 1}
	for i := range sendAt {
		s.At(sendAt[i], func() {
			if err := s.Send(to[i], request(byte(3+i%2), 0xdeadbeef00000000|uint64(i))); err != nil {
				t.Error(err)
			}
		})
	}
	s.RunUntil(30 * time.Second)

	links := make([]*Link, 2)
	for i := range links {
		links[i], _ = NewLink(cfg.Servers[i].Link, noise.Links[i])
	}
	epoch := time.Unix(DefaultEpochUnix, 0).UTC()
	var want []delivery
	for i := range sendAt {
		sc := cfg.Servers[to[i]]
		up, _ := links[to[i]].Delay(Up)
		down, _ := links[to[i]].Delay(Down)
		arrive := epoch.Add(sendAt[i] + up + sc.Offset)
		stratum, refID, prec := sc.Stratum, sc.RefID, sc.PrecisionLog2
		if stratum == 0 {
			stratum, refID, prec = 1, [4]byte{'S', 'I', 'M'}, -20
		}
		r := make([]byte, 48)
		r[0] = sc.Leap<<6 | byte(3+i%2)<<3 | 4
		r[1], r[2], r[3] = stratum, 6, byte(prec)
		binary.BigEndian.PutUint32(r[4:], uint32(sc.RootDelay.Seconds()*65536))
		binary.BigEndian.PutUint32(r[8:], uint32(sc.RootDispersion.Seconds()*65536))
		copy(r[12:], refID[:])
		binary.BigEndian.PutUint64(r[16:], uint64(arrive.Unix()+ntpEraOffsetS)<<32)
		binary.BigEndian.PutUint64(r[24:], 0xdeadbeef00000000|uint64(i))
		binary.BigEndian.PutUint64(r[32:], ntpTimestamp(arrive.UnixNano()))
		binary.BigEndian.PutUint64(r[40:], ntpTimestamp(arrive.UnixNano()))
		want = append(want, delivery{to[i], epoch.Add(sendAt[i] + up + down - 2*time.Millisecond), r})
	}
	// Replies can overtake each other; compare in send order.
	if len(got) == 3 && got[0].Server == 0 {
		got[0], got[1] = got[1], got[0]
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, d := range got {
		rx, tx := ntpToTime(binary.BigEndian.Uint64(d.Reply[32:])), ntpToTime(binary.BigEndian.Uint64(d.Reply[40:]))
		if !rx.Equal(tx) {
			t.Errorf("server RX %v != TX %v", rx, tx)
		}
	}
	if m := s.Metrics(); m.MeanPollS == 0 {
		t.Errorf("polls not counted: %+v", m)
	}
}

func TestServerIgnores(t *testing.T) {
	tests := []struct {
		name string
		pkt  []byte
	}{
		{"short", make([]byte, 47)},
		{"server mode", func() []byte { p := request(4, 1); p[0] = 4<<3 | 4; return p }()},
		{"symmetric mode", func() []byte { p := request(4, 1); p[0] = 4<<3 | 1; return p }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSim(t, oneServer())
			replies := 0
			s.SetReceiver(func(int, []byte, time.Time, time.Duration) { replies++ })
			if err := s.Send(0, tt.pkt); err != nil {
				t.Fatal(err)
			}
			s.RunUntil(10 * time.Second)
			if replies != 0 {
				t.Errorf("%d replies", replies)
			}
		})
	}
}

func TestSendErrors(t *testing.T) {
	s := newTestSim(t, oneServer())
	for _, server := range []int{-1, 1} {
		if err := s.Send(server, request(4, 0)); !errors.Is(err, ErrUnknownServer) {
			t.Errorf("server %d: err %v, want ErrUnknownServer", server, err)
		}
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"bad link", Config{Servers: []ServerConfig{{}}}},
		{"bad leap", Config{Servers: []ServerConfig{{Leap: 4, Link: DefaultLinkConfig()}}}},
		{"bad clock", Config{Clock: ClockConfig{F0: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("err %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestNTPTimestampRoundTrip(t *testing.T) {
	for _, ns := range []int64{0, 1, 999999999, 1735689600123456789, 1735689600999999999, -1} {
		got := ntpToTime(ntpTimestamp(ns)).UnixNano()
		if got != ns {
			t.Errorf("%d ns → %d ns", ns, got)
		}
	}
}

// pingEngine is a minimal stand-in for the engine: it polls server 0
// every 64 s of monotonic time and steers the clock with what it measures.
type pingEngine struct {
	s   *Sim
	log []string
}

func (e *pingEngine) start() {
	e.s.SetReceiver(e.receive)
	e.poll()
}

func (e *pingEngine) poll() {
	rt, mono := e.s.Client().Now()
	_ = e.s.Send(0, request(4, ntpTimestamp(rt.UnixNano())))
	e.s.AtMonotonic(mono+64*time.Second, e.poll)
}

func (e *pingEngine) receive(_ int, pkt []byte, rx time.Time, _ time.Duration) {
	t1 := ntpToTime(binary.BigEndian.Uint64(pkt[24:]))
	t2 := ntpToTime(binary.BigEndian.Uint64(pkt[32:]))
	t3 := ntpToTime(binary.BigEndian.Uint64(pkt[40:]))
	offset := (t2.Sub(t1) + t3.Sub(rx)) / 2 // server − client
	e.log = append(e.log, fmt.Sprintf("%v %v", e.s.Now(), offset))
	k := e.s.Client()
	tx := unix.Timex{Modes: unix.ADJ_OFFSET_SINGLESHOT, Offset: offset.Microseconds()}
	_, _ = k.Adjtimex(&tx)
	tx = unix.Timex{}
	_, _ = k.Adjtimex(&tx)
	tx = unix.Timex{Modes: unix.ADJ_FREQUENCY, Freq: tx.Freq + int64(float64(offset)/64e9*1e6*65536*0.3)}
	_, _ = k.Adjtimex(&tx)
}

func runPing(t testing.TB, seed uint32, end time.Duration) (*pingEngine, Metrics) {
	cfg := oneServer()
	cfg.Seed = seed
	cfg.Clock.InitialOffset = 100 * time.Millisecond
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &pingEngine{s: s}
	s.At(0, e.start)
	s.RunUntil(end)
	return e, s.Metrics()
}

func TestDeterminism(t *testing.T) {
	a, ma := runPing(t, 3, 5000*time.Second)
	b, mb := runPing(t, 3, 5000*time.Second)
	if diff := cmp.Diff(a.log, b.log); diff != "" {
		t.Errorf("two runs differ (-first +second):\n%s", diff)
	}
	if diff := cmp.Diff(ma, mb); diff != "" {
		t.Errorf("metrics differ (-first +second):\n%s", diff)
	}
	c, _ := runPing(t, 4, 5000*time.Second)
	if cmp.Equal(a.log, c.log) {
		t.Error("seeds 3 and 4 gave the same run")
	}
	if len(a.log) < 70 {
		t.Errorf("%d replies in 5000 s at a 64 s poll", len(a.log))
	}
}
