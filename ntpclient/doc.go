// Package ntpclient is ntptool's NTP client side: one exchange with a
// server (Query), the validation of a reply (Validate, after RFC 5905
// section 8 and the packet sanity tests of section 13's "packet" procedure),
// and the parallel query of many servers and of every address a name
// resolves to (QueryServers), as ntpdate -q, sntp and chronyd -Q do.
//
// Sign convention: Offset > 0 means the server's clock is ahead of the
// local clock (the local clock is behind and must be advanced), as in
// RFC 5905 section 8: offset = ((T2 - T1) + (T3 - T4)) / 2.
//
// The exchange itself is github.com/beevik/ntp: a random transmit
// timestamp (so spoofed replies fail the origin check) and kernel receive
// timestamps (SO_TIMESTAMPNS).
package ntpclient
