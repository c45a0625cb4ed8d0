// Package ntpserve implements the server side of NTP: RFC 5905 server mode
// (§9, §9.2 and the packet format of §7.3) for client-mode requests of
// versions 1–4, with kernel receive timestamps, access control, per-client
// rate limiting with Kiss-o'-Death RATE replies (§7.4) and a hard rule that a
// reply is never larger than its request.
//
// The package has a pure core and a thin network shell.
//
//   - ParseRequest and BuildReply are pure functions of (request bytes,
//     receive time, transmit time, server State). They allocate nothing and
//     are table-tested and fuzzed.
//   - State is the server's sync state (leap, stratum, refid, reference
//     time, root delay, root dispersion, precision). It comes from a
//     StateSource: the daemon stores UpstreamState (a pure function of its
//     selected source and error bounds, RFC 5905 §11.2) in an AtomicState;
//     `ntptool serve` uses SystemSource, which derives it from a configured
//     local stratum (like chrony's `local stratum N`) or from the kernel
//     clock's status, read through the clock package's read-only kernel
//     (this package never calls adjtimex itself).
//   - ACL and RateLimiter decide who is answered. The rate limiter is a
//     fixed-size table hashed with a random key, so a flood from millions of
//     spoofed addresses cannot grow memory or aim at a chosen client's slot.
//   - Server owns the sockets: per listen address one SO_REUSEPORT socket and
//     one goroutine per CPU, batched recvmmsg(2)/sendmmsg(2), SO_TIMESTAMPNS
//     receive timestamps and IP_PKTINFO/IPV6_PKTINFO so a wildcard socket
//     answers from the address it was asked on. The hot path allocates nothing.
//
// What is never answered (each counted in Stats): packets shorter than the
// 48-byte header, versions other than 1–4, every mode but client (mode 3, and
// the NTPv1 mode 0 that ntpd and chrony also treat as a client), NTP control
// (mode 6) and private (mode 7, "monlist") packets, malformed extension
// fields (RFC 7822), requests carrying a MAC (no keys are configured, so no
// authenticated reply can be made: RFC 5905 §7.3 and §9.2), denied clients
// (unless KoD DENY is configured) and rate-limited clients (apart from an
// occasional KoD RATE). Unknown valid extension fields are tolerated and not
// echoed, so the 48-byte reply is never larger than the request.
//
// Time is injected: the server reads the wall clock only through the Now
// function it is given; the receive timestamp comes from the kernel.
package ntpserve
