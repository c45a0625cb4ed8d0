// Package oneshot makes the clock corrections that are made once, outside
// the daemon: a manual step (ntptool step --by D | --to T) and a one-shot
// synchronisation (ntptool sync --once, the job ntpdate and chronyd -q do
// at boot).
//
// Both go through the same doors as the daemon: the pre-step hooks of
// package stephook (DHCP renewals, exec hooks, the failure policy) before
// any step, the post-step hooks after it, and clock.Clock over a
// clock.Kernel for the change itself (ADJ_SETOFFSET for a step; a slew of
// the tick and frequency at the configured maximum rate, ended by this
// process, for a slew). A dry run reads the clock and reports what the
// hooks would do (stephook.Runner.DryRun); it changes nothing.
//
// Sync queries every configured server (several exchanges each, the one
// with the lowest delay kept) and decides with package selection, whose
// guarantee it inherits: it corrects the clock only when a strict majority
// of the servers that answered agree (their correctness intervals, RFC
// 5905 section 11.2.1, share a point), and then by an offset inside the
// interval of every correct survivor. Step or slew follows the [step]
// policy of the configuration, as the daemon's first update would
// (discipline.Policy.Decide: step beyond step.threshold when steps are
// allowed; the panic threshold does not apply to a first correction).
//
// The kernel is the caller's: clock.Linux in ntptool, a simulated kernel
// in the tests. Nothing in this package reads the host's clock except
// through it.
package oneshot
