// Package ntpclient is ntptool's NTP client side.
//
// For scripts and monitoring: one exchange with a server (Query), the
// validation of a reply (Validate, after RFC 5905 section 8 and the packet
// sanity tests of section 13), and the parallel query of many servers and
// of every address a name resolves to (QueryServers), as ntpdate -q, sntp
// and chronyd -Q do. The exchange is github.com/beevik/ntp: a random
// transmit timestamp (so spoofed replies fail the origin check) and kernel
// receive timestamps (SO_TIMESTAMPNS).
//
// For the engine: the state of one server (Source: request and reply,
// reach register, poll interval, and a bank of Kalman filters of the local
// clock against it), and the selection of truechimers (Select, RFC 5905
// section 11.2.1).
//
// Sign conventions: Response.Offset, a time.Duration, is the server's
// clock minus the local clock (> 0: the local clock is behind), as RFC
// 5905 section 8 defines it. The engine's quantities (Sample, Filter,
// Estimate, Candidate, in float seconds) are the local clock minus the
// server's (> 0: the local clock is ahead), the convention of the clock
// and of the simulator.
package ntpclient
