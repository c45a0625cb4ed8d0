// Package discipline turns the selected time estimate into actions on the
// clock: a frequency correction, a slew or a step, under a step policy
// (threshold and limit like chrony's makestep, a panic threshold, slew-only
// mode) and a maximum slew rate; and it estimates the clock's phase and
// frequency per source with a Kalman filter (RFC 5905 section 11.3 explains
// the PLL/FLL it replaces). It never calls the kernel or reads the wall
// clock: samples and the time come in as parameters.
package discipline
