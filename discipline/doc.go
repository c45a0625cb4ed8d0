// Package discipline turns the truechimers' estimates into actions on the
// clock: it combines them (inverse-variance weights), sets the frequency
// correction that cancels the estimated frequency error (feed-forward, as
// chrony does, instead of RFC 5905 section 11.3's PLL/FLL, whose time
// constant lags), and removes the estimated offset by a slew or, under the
// step policy (threshold and limit like chrony's makestep, a panic
// threshold, slew-only mode), a step. It never calls the kernel or reads
// the wall clock: estimates and the time come in as parameters.
package discipline
