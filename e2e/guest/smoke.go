package main

import (
	"fmt"
	"math"
	"time"

	"github.com/ntptool/ntptool/e2e/ktrace"
)

// scenarios are what the guest can run, by Spec.Scenario. The harness
// decides which run and judges the reports.
var scenarios = map[string]func(*g) error{
	"smoke":             scenarioSmoke,
	"chrony":            scenarioChrony,
	"discipline":        scenarioNtptoolDiscipline,
	"slew":              scenarioNtptoolDiscipline,
	"ntptool-vs-chrony": scenarioNtptoolDiscipline,
	"dhcp-noh":          scenarioDHCPNoHooks,
	"dhcp-hooks":        scenarioDHCPHooks,
	"dhcp-external":     scenarioDHCPExternal,
	"least-priv":        scenarioLeastPriv,
}

// scenarioSmoke proves the guest's clock control and the measurement: it
// measures the guest's own rate, steps the clock by InjectStepSeconds and
// sets InjectFreqPPM, and measures both back through the host's server.
// It also checks the kernel trace counts against the calls it made itself.
func scenarioSmoke(s *g) error {
	interval := seconds(s.spec.SampleSeconds, time.Second)
	w := seconds(s.spec.RateWindowSeconds, 15*time.Second)
	if _, err := s.query(); err != nil { // warm-up: ARP, slirp's socket
		return fmt.Errorf("first query to the host's server: %w", err)
	}
	traceOK := s.startTrace()
	tTrace := mono()
	free, err := s.measureRate("free", seconds(s.spec.FreeRunSeconds, 60*time.Second), w, interval)
	if err != nil {
		return err
	}
	before, err := s.query()
	if err != nil {
		return err
	}
	tSet := mono()
	if err := s.clock.Step(seconds(s.spec.InjectStepSeconds, 0)); err != nil {
		return err
	}
	if err := s.clock.SetFrequency(s.spec.InjectFreqPPM); err != nil {
		return err
	}
	s.note("stepped the clock %+.3f s and set %+.1f ppm", s.spec.InjectStepSeconds, s.spec.InjectFreqPPM)
	after, err := s.query()
	if err != nil {
		return err
	}
	// What the offset must be now if the step was exactly the injected
	// one: the offset before it, minus the step, minus what the guest's
	// own rate and the new frequency added since.
	want := before.Offset - s.spec.InjectStepSeconds - free.RatePPM*1e-6*(after.T-before.T) - s.spec.InjectFreqPPM*1e-6*(after.T-tSet)
	s.rep.Set("offset_before_step_seconds", before.Offset)
	s.rep.Set("offset_after_step_seconds", after.Offset)
	s.rep.Set("step_error_seconds", after.Offset-want)
	tx, err := readTimex()
	if err != nil {
		return err
	}
	s.rep.Set("kernel_freq_ppm", tx.FreqPPM)
	adj, err := s.measureRate("adjusted", seconds(s.spec.RunSeconds, 45*time.Second), w, interval)
	if err != nil {
		return err
	}
	s.rep.Set("freq_seen_ppm", adj.RatePPM-free.RatePPM)
	s.note("frequency seen from the host: %+.2f ppm (set %+.1f)", adj.RatePPM-free.RatePPM, s.spec.InjectFreqPPM)
	if traceOK {
		events, lost, err := ktrace.Read(ktrace.Dir)
		if err != nil {
			return err
		}
		s.rep.Set("trace_lost_events", float64(lost))
		in := ktrace.Count(events, "init", tTrace, math.Inf(1))
		q := ktrace.Count(events, "ntptool", tTrace, math.Inf(1))
		s.rep.Set("trace_init_steps", float64(in.Steps))
		s.rep.Set("trace_init_frequency_sets", float64(in.FrequencySets))
		s.rep.Set("trace_init_adjtimex_writes", float64(in.AdjtimexWrites))
		s.rep.Set("trace_query_udp_sends", float64(q.UDPSends))
		s.rep.Set("query_packets_sent", float64(s.queriesSince(tTrace)*burstSize))
	}
	return nil
}

// startTrace starts the kernel trace; a failure is recorded, not fatal,
// so the clock figures still come back.
func (s *g) startTrace() bool {
	if err := ktrace.Start(ktrace.Dir, 8192); err != nil {
		s.rep.Facts["trace_error"] = err.Error()
		s.note("kernel trace unavailable: %v", err)
		return false
	}
	return true
}
