package stephook

import (
	"fmt"
	"strconv"
	"time"
)

// Kind is what happened to the clock.
type Kind int

// The events hooks run for.
const (
	// PreStep: the daemon is about to step the clock (the step is not
	// committed yet; the hooks' verdict decides whether it is).
	PreStep Kind = iota + 1
	// PostStep: the daemon has stepped the clock.
	PostStep
	// ExternalStep: something else stepped the clock (see Watcher).
	ExternalStep
)

// String returns the name NTPTOOL_EVENT carries: "pre-step", "post-step"
// or "external-step".
func (k Kind) String() string {
	switch k {
	case PreStep:
		return "pre-step"
	case PostStep:
		return "post-step"
	case ExternalStep:
		return "external-step"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Event is one clock step, made or about to be made.
type Event struct {
	// Kind is the event.
	Kind Kind
	// Step is the change of the wall clock: positive moves it forward.
	Step time.Duration
	// Old and New are the wall-clock time just before and just after the
	// step (for a PreStep, as proposed). Either may be zero if unknown.
	Old, New time.Time
	// Reason says why, for the log and the hooks ("initial offset
	// +3600.2 s from 3 sources", "ntptool step --by -1h").
	Reason string
}

// Environment variables an exec hook receives, besides the daemon's own
// environment.
const (
	// EnvEvent is "pre-step", "post-step" or "external-step".
	EnvEvent = "NTPTOOL_EVENT"
	// EnvStepSeconds is the step in seconds, signed (positive: the clock
	// moved forward), with nanosecond precision: "-3600.000000000".
	EnvStepSeconds = "NTPTOOL_STEP_SECONDS"
	// EnvOldTime and EnvNewTime are the wall-clock times before and after
	// the step, RFC 3339 in UTC with nanoseconds; empty if unknown.
	EnvOldTime = "NTPTOOL_OLD_TIME"
	EnvNewTime = "NTPTOOL_NEW_TIME"
	// EnvReason is Event.Reason.
	EnvReason = "NTPTOOL_REASON"
)

// Env returns the hook environment variables of e, as "KEY=value".
func (e Event) Env() []string {
	return []string{
		EnvEvent + "=" + e.Kind.String(),
		EnvStepSeconds + "=" + stepSeconds(e.Step),
		EnvOldTime + "=" + rfc3339(e.Old),
		EnvNewTime + "=" + rfc3339(e.New),
		EnvReason + "=" + e.Reason,
	}
}

// stepSeconds formats d in seconds with a sign and 9 decimals, exactly
// (no float rounding).
func stepSeconds(d time.Duration) string {
	sign := "+"
	u := uint64(d)
	if d < 0 {
		sign, u = "-", uint64(-d) // -MinInt64 wraps to itself: still right as uint64
	}
	return fmt.Sprintf("%s%d.%09d", sign, u/1e9, u%1e9)
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
