// Package pool decides which addresses the daemon uses for its
// configured sources, as ntpd's and chrony's pool and server directives
// do: a `server` name resolves to one address, a `pool` name to up to
// maxsources addresses; pool members that stop answering (8 polls
// unanswered: an empty reach register) or that stay falsetickers are
// replaced by fresh addresses, re-resolving a name at most once per 30
// minutes; a `server` whose address stays unreachable has its name
// re-resolved, and moves to a new address if the name now gives one.
//
// The Manager is pure: time comes in as a parameter (the loop's monotonic
// time), DNS lookups go out as requests (Plan.Lookups) that the caller
// runs off its loop (Lookuper does, with a timeout) and feeds back
// (Manager.Resolved), and its decisions come out as actions (add this
// address as source N, remove source M) that the loop applies to the
// engine and the transport. A member is replaced only when a fresh
// address is at hand: during a network outage every member looks dead,
// and keeping them means they resume when the network does, without
// waiting for DNS.
package pool
