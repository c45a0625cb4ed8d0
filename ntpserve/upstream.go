package ntpserve

import (
	"crypto/md5"
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/ntptool/ntptool/ntpwire"
)

// Upstream is what the daemon's loop knows of its own synchronisation,
// for the embedded server ([server] enabled = true). The loop fills one
// after each clock update and stores UpstreamState(u) in an AtomicState.
type Upstream struct {
	// Synchronized is set while the clock is disciplined from a selected
	// source (holdover on the learned frequency counts: the growing
	// dispersion tells clients how far to trust it).
	Synchronized bool
	// Leap is the leap second announced: +1 insert, -1 delete, 0 none
	// (the engine's convention).
	Leap int
	// Source is the selected source's address; it becomes the reference
	// ID. The zero Addr (no address, a reference clock) serves
	// LocalRefID.
	Source netip.Addr
	// SourceStratum is the selected source's stratum; ours is one more.
	SourceStratum int
	// SourceRootDelay and SourceRootDispersion are the root delay and
	// dispersion of the source's last reply.
	SourceRootDelay, SourceRootDispersion time.Duration
	// Delay is the round-trip delay to the source.
	Delay time.Duration
	// Dispersion is this host's own error bound against the source at
	// RefTime: the estimate's uncertainty, jitter and the offset still to
	// correct (RFC 5905 §11.2's |offset| + jitter + dispersion).
	Dispersion time.Duration
	// RefTime is when the clock was last corrected from the source; the
	// served dispersion grows at PHI (15 ppm) from it.
	RefTime time.Time
	// LocalStratum (1–15) serves this stratum from the local clock while
	// unsynchronised, for an isolated LAN; 0 serves leap 3 / stratum 16.
	LocalStratum int
	// Precision is the clock's precision (log2 s); 0 means DefaultPrecision.
	Precision int8
}

// UpstreamState is the server state the daemon's embedded server answers
// with (RFC 5905 §11.2, clock_update): synchronised, stratum = the
// source's + 1, refid = the source (RefIDFor), root delay = the source's
// root delay + the delay to it, root dispersion = the source's root
// dispersion + our dispersion (at least the precision), growing at PHI
// with the age of RefTime, and the leap flags. Unsynchronised (or a
// source at stratum 15 or above): leap 3 / stratum 16, unless a local
// stratum is configured, which is served as SystemSource does (refid
// 127.127.1.1, like chrony's `local stratum N`).
func UpstreamState(u Upstream) State {
	prec := u.Precision
	if prec == 0 {
		prec = DefaultPrecision
	}
	stratum := u.SourceStratum + 1
	if !u.Synchronized || u.SourceStratum < 1 || stratum >= MaxStratum {
		if u.LocalStratum < 1 || u.LocalStratum >= MaxStratum {
			return State{Leap: LeapUnsynch, Stratum: MaxStratum, RootDispersion: 16 * time.Second, Precision: prec}
		}
		st := State{Stratum: uint8(u.LocalStratum), RefID: LocalRefID, RootDispersion: precisionDuration(prec), DispersionRatePPM: phiPPM, Precision: prec}
		if !u.RefTime.IsZero() {
			st.RefTime = ntpwire.FromTime(u.RefTime)
		}
		return st
	}
	st := State{
		Stratum:           uint8(stratum),
		RefID:             RefIDFor(u.Source),
		RefTime:           ntpwire.FromTime(u.RefTime),
		RootDelay:         max(u.SourceRootDelay, 0) + max(u.Delay, 0),
		RootDispersion:    max(u.SourceRootDispersion, 0) + max(u.Dispersion, precisionDuration(prec)),
		DispersionRatePPM: phiPPM,
		Precision:         prec,
	}
	switch {
	case u.Leap > 0:
		st.Leap = LeapInsert
	case u.Leap < 0:
		st.Leap = LeapDelete
	}
	return st
}

// RefIDFor is the reference ID of an upstream server (RFC 5905 §7.3): an
// IPv4 address itself, in network order; for IPv6, the first four octets
// of the MD5 hash of the address, as ntpd sends them. An IPv4-mapped IPv6
// address is its IPv4 address; an invalid Addr gives LocalRefID.
func RefIDFor(a netip.Addr) uint32 {
	a = a.Unmap()
	switch {
	case a.Is4():
		b := a.As4()
		return binary.BigEndian.Uint32(b[:])
	case a.Is6():
		b := a.As16()
		sum := md5.Sum(b[:])
		return binary.BigEndian.Uint32(sum[:4])
	}
	return LocalRefID
}
