package audit

import (
	"fmt"
	"time"
)

// Constructors of the entries the daemon writes, so that every entry of a
// kind has the same shape. t is the clock's reading when the change was
// made (before it, for a step); applied is false for a dry run (no clock
// control). Sources are "name (address)".

// StepEntry records a step of delta (positive: the clock moved forward).
func StepEntry(t time.Time, delta time.Duration, reason string, sources []string, hooks []HookRun, applied bool) Entry {
	return Entry{Time: t, Kind: KindStep, Old: t.UTC().Format(time.RFC3339Nano), New: t.Add(delta).UTC().Format(time.RFC3339Nano),
		DeltaSeconds: delta.Seconds(), Reason: reason, Sources: sources, Hooks: hooks, Applied: applied}
}

// SlewEntry records a new slew: from the phase the previous one still had
// to slew to the new one (seconds; positive moves the clock forward).
func SlewEntry(t time.Time, remaining, slew time.Duration, reason string, sources []string, applied bool) Entry {
	return Entry{Time: t, Kind: KindSlew, Old: remaining.Seconds(), New: slew.Seconds(), Unit: "s",
		Reason: reason, Sources: sources, Applied: applied}
}

// FrequencyEntry records a change of the frequency correction (ppm;
// positive speeds the clock up).
func FrequencyEntry(t time.Time, oldPPM, newPPM float64, reason string, sources []string, applied bool) Entry {
	return Entry{Time: t, Kind: KindFrequency, Old: oldPPM, New: newPPM, Unit: "ppm",
		Reason: reason, Sources: sources, Applied: applied}
}

// StatusEntry records a change of the kernel's synchronisation status.
func StatusEntry(t time.Time, synced bool, maxError time.Duration, reason string, applied bool) Entry {
	old, now := "synchronised", "unsynchronised"
	if synced {
		old, now = now, old
	}
	if reason == "" {
		reason = fmt.Sprintf("maximum error %v", maxError)
	}
	return Entry{Time: t, Kind: KindStatus, Old: old, New: now, Reason: reason, Applied: applied}
}

// LeapEntry records a change of the leap second announced to the kernel
// (+1 insert, -1 delete, 0 none).
func LeapEntry(t time.Time, oldLeap, newLeap int, reason string, sources []string, applied bool) Entry {
	return Entry{Time: t, Kind: KindLeap, Old: leapName(oldLeap), New: leapName(newLeap), Reason: reason, Sources: sources, Applied: applied}
}

func leapName(leap int) string {
	switch {
	case leap > 0:
		return "insert"
	case leap < 0:
		return "delete"
	}
	return "none"
}

// ExternalEntry records a change of the clock by another process: the
// daemon expected to read expected and read found. Applied is true: the
// change happened, whoever made it.
func ExternalEntry(expected, found time.Time, reason string, hooks []HookRun) Entry {
	return Entry{Time: found, Kind: KindExternal, Old: expected.UTC().Format(time.RFC3339Nano), New: found.UTC().Format(time.RFC3339Nano),
		DeltaSeconds: found.Sub(expected).Seconds(), Reason: reason, Hooks: hooks, Applied: true}
}
