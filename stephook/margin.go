package stephook

import "time"

// Margin is how large a clock step an address survives without ntptool's
// hooks: the lease doctor's verdict.
type Margin struct {
	// MaxBackward and MaxForward are the largest backward and forward steps
	// after which the client still renews the address before the kernel
	// removes it; nil means no limit.
	MaxBackward, MaxForward *time.Duration
	// Immune is true when the client schedules by monotonic time, so that
	// no step changes when it renews.
	Immune bool
	// AtRisk is true when the address expires before its next renewal even
	// without a step (a step already happened, or nothing renews it).
	AtRisk bool
	// Note explains the verdict in a sentence.
	Note string
}

// wallClock reports whether a client schedules its renewals by the wall
// clock. ISC dhclient does (its timers are absolute wall-clock times, as
// the renew/rebind/expire dates of its lease file show); dhcpcd, busybox
// udhcpc, systemd-networkd and NetworkManager's internal client use
// monotonic or boot-time clocks. NetworkManager's dhclient backend is
// dhclient.
func wallClock(kind ClientKind, backend string) bool {
	return kind == DHClient || kind == NetworkManager && backend == "dhclient"
}

// stepMargin is the doctor's verdict for address a, managed by a client of
// kind (with backend, for NetworkManager; "" if no client was found), whose
// current lease (from the client's lease file, nil if unknown) the client
// schedules as it says, at wall-clock time now.
//
// The kernel removes the address after a.Valid of monotonic time whatever
// the wall clock does. dhclient acts when its wall clock reaches the
// lease's renew time (T1): after a backward step of S it acts S later, so
// the address survives while renew − now + S < valid_lft. A forward step
// brings T1 nearer: dhclient renews at once (the lab saw that after +1 h),
// so there is no forward limit; only if the server is unreachable does a
// forward step past the expiry make dhclient give the address up early.
func stepMargin(kind ClientKind, backend string, a Addr, lease *Lease, now time.Time) Margin {
	switch {
	case a.Valid == Forever:
		return Margin{Immune: true, Note: "the address never expires"}
	case kind == "":
		return Margin{AtRisk: true, Note: "no DHCP client manages this address: the kernel removes it when valid_lft ends, whatever the clock does"}
	case !wallClock(kind, backend):
		return Margin{Immune: true, Note: string(kind) + " schedules renewals in monotonic time: clock steps do not delay them"}
	case lease == nil:
		zero := time.Duration(0)
		return Margin{MaxBackward: &zero, Note: "no lease found for this address: its renewal time is unknown, so any backward step may delay it past the expiry"}
	}
	next := lease.Renew
	for _, t := range []time.Time{lease.Rebind, lease.Expire} {
		if next.IsZero() {
			next = t
		}
	}
	if next.IsZero() {
		return Margin{Note: "the lease never needs renewing"}
	}
	until := max(next.Sub(now), 0) // T1 passed: the client is retrying now
	back := a.Valid - until
	m := Margin{MaxBackward: &back, Note: "dhclient renews at the lease's renew time by the wall clock: a backward step delays it, a forward step makes it renew at once"}
	if back <= 0 {
		back = 0
		m.AtRisk = true
		m.Note = "the lease's renew time (by the wall clock) is after the kernel removes the address: it will be lost unless renewed now (ntptool renew)"
	}
	return m
}
