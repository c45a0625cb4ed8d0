package stephook

import (
	"encoding/json"
	"net/netip"
	"strings"
	"time"

	"github.com/ntptool/ntptool/audit"
)

// Outcome is how one hook or renewal ended.
type Outcome string

// Outcomes.
const (
	// OK: the hook exited 0; the renewal was made and, where the address
	// lifetimes tell, confirmed.
	OK Outcome = "ok"
	// Failed: the hook failed, or the renewal could not be made or
	// confirmed.
	Failed Outcome = "failed"
	// TimedOut: the hook or renewal ran out of hooks.timeout.
	TimedOut Outcome = "timeout"
	// Skipped: not run (the policy aborted the event's remaining hooks, or
	// no client was found for a requested interface).
	Skipped Outcome = "skipped"
	// DryRun: not run; Action says what would have been done.
	DryRun Outcome = "dry-run"
)

// Verdict is what the hooks decide about the step.
type Verdict int

// Verdicts.
const (
	// Proceed: commit the step (for a PreStep), or nothing went wrong.
	Proceed Verdict = iota
	// Abort: do not step (PreStep: the engine slews or holds instead); for
	// PostStep and ExternalStep, the remaining exec hooks were skipped.
	Abort
)

// String returns "proceed" or "abort".
func (v Verdict) String() string {
	if v == Abort {
		return "abort"
	}
	return "proceed"
}

// Result is one hook run: a built-in renewal, an exec hook, or the check of
// the lifetimes after a step.
type Result struct {
	// Hook is "renew", "exec" or "verify".
	Hook string
	// Name is the renewer instance ("dhclient[1234]") or the program of an
	// exec hook.
	Name string
	// Client is the DHCP client (renew and verify); empty for exec.
	Client ClientKind
	// Interfaces are the interfaces the renewal covered.
	Interfaces []string
	// Action says what was done (or, in a dry run, would be done).
	Action string
	// Outcome is how it ended; Err why, if not OK.
	Outcome Outcome
	Err     error
	// Duration is how long it took.
	Duration time.Duration
	// Output is what an exec hook or a command printed (at most 64 KiB).
	Output string
	// Before and After are the lifetimes of the addresses concerned, read
	// before and after the renewal.
	Before, After []Lifetimes
}

// Lifetimes are an address's remaining lifetimes at one moment.
type Lifetimes struct {
	Interface        string
	Address          netip.Prefix
	Valid, Preferred time.Duration // Forever if infinite
}

// Report is the outcome of running an event's hooks.
type Report struct {
	Event   Event
	Verdict Verdict
	// Reason says why the verdict is Abort.
	Reason string
	// Hold is set with Verdict Abort when the pre-step policy is "hold":
	// the step's owner leaves the clock alone (the engine proposes the
	// step again at its next update) instead of slewing the offset out.
	Hold     bool
	Results  []Result
	Duration time.Duration
}

// Failed reports whether any result did not end OK (dry runs and skips
// aside).
func (r Report) Failed() bool {
	for _, res := range r.Results {
		if res.Outcome == Failed || res.Outcome == TimedOut {
			return true
		}
	}
	return false
}

// lifetimesJSON is the JSON form of Lifetimes.
type lifetimesJSON struct {
	Interface string `json:"interface"`
	Address   string `json:"address"`
	Valid     int64  `json:"valid_lft_seconds"`
	Preferred int64  `json:"preferred_lft_seconds"`
}

func lifetimesOut(ls []Lifetimes) []lifetimesJSON {
	out := make([]lifetimesJSON, 0, len(ls))
	for _, l := range ls {
		out = append(out, lifetimesJSON{l.Interface, l.Address.String(), seconds(l.Valid), seconds(l.Preferred)})
	}
	return out
}

// MarshalJSON writes the keys of `ntptool renew --json` (a contract):
// hook, name, client, interfaces, action, outcome, error, duration_seconds,
// output, before and after (lists of interface, address,
// valid_lft_seconds, preferred_lft_seconds; -1 is forever).
func (r Result) MarshalJSON() ([]byte, error) {
	errText := ""
	if r.Err != nil {
		errText = r.Err.Error()
	}
	ifaces := r.Interfaces
	if ifaces == nil {
		ifaces = []string{}
	}
	return json.Marshal(struct {
		Hook       string          `json:"hook"`
		Name       string          `json:"name"`
		Client     string          `json:"client"`
		Interfaces []string        `json:"interfaces"`
		Action     string          `json:"action"`
		Outcome    string          `json:"outcome"`
		Error      string          `json:"error"`
		Duration   float64         `json:"duration_seconds"`
		Output     string          `json:"output"`
		Before     []lifetimesJSON `json:"before"`
		After      []lifetimesJSON `json:"after"`
	}{r.Hook, r.Name, string(r.Client), ifaces, r.Action, string(r.Outcome), errText,
		r.Duration.Seconds(), r.Output, lifetimesOut(r.Before), lifetimesOut(r.After)})
}

// AuditHooks returns the report's results as the audit journal records
// them (audit.Entry.Hooks): one run per result, in order, with the phase
// of the event ("pre_step", "post_step" or "external_step"), the name
// (the renewer instance, "dhclient[1234]", or an exec hook's program),
// the outcome ("ok", "failed", "timeout", "skipped", "dry-run"), the error
// and the duration. A step's entry carries its pre-step and post-step
// runs together.
func (r Report) AuditHooks() []audit.HookRun {
	phase := strings.ReplaceAll(r.Event.Kind.String(), "-", "_")
	out := make([]audit.HookRun, 0, len(r.Results))
	for _, res := range r.Results {
		name := res.Name
		if res.Hook == "verify" {
			name = "verify " + name // the check of the lifetimes after the step
		}
		out = append(out, audit.HookRun{Name: name, Phase: phase, Result: string(res.Outcome),
			Error: errText(res.Err), DurationSeconds: res.Duration.Seconds()})
	}
	return out
}
