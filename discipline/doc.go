// Package discipline turns the combined estimate of the clock into actions
// on it: the frequency correction that cancels the estimated frequency
// error (feed-forward, as chrony does, instead of RFC 5905 section 11.3's
// PLL/FLL, whose time constant lags), a slew that removes the estimated
// offset smoothly, or, under the step policy (threshold and limit like
// chrony's makestep, a panic threshold, slew-only mode), a step proposal;
// and the synchronisation status handed to the kernel (estimated and
// maximum error, leap second).
//
// It is pure: it never calls the kernel or reads the wall clock. The
// estimate comes in as a parameter and Actions come out; the engine
// carries them out through package clock. A step is two-phase: Update
// proposes it, the engine's owner runs the pre-step hooks, and
// CommitStep (with the offset valid at that moment) or CancelStep
// settles it.
package discipline
