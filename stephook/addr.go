package stephook

import (
	"net/netip"
	"time"
)

// Forever is the lifetime of an address that never expires (the kernel's
// INFINITY_LIFE_TIME, 0xFFFFFFFF seconds).
const Forever time.Duration = -1

// Address flags of rtnetlink (linux/if_addr.h), as Addr.Flags holds them.
const (
	flagTemporary     = 0x01  // IFA_F_TEMPORARY: an RFC 8981 privacy address (SLAAC)
	flagPermanent     = 0x80  // IFA_F_PERMANENT: configured without lifetimes
	flagManageTempAdr = 0x100 // IFA_F_MANAGETEMPADDR: a SLAAC prefix that makes temporaries
	flagNoPrefixRoute = 0x200 // IFA_F_NOPREFIXROUTE
)

// Addr is one address of an interface as the kernel reports it.
type Addr struct {
	// Interface and Index name the link.
	Interface string
	Index     int
	// Prefix is the address with its prefix length.
	Prefix netip.Prefix
	// Valid and Preferred are the remaining lifetimes (valid_lft,
	// preferred_lft), counted by the kernel in monotonic time; Forever if
	// they never end.
	Valid, Preferred time.Duration
	// Flags are the IFA_F_* flags.
	Flags int
}

// Dynamic reports whether the kernel will remove the address when its
// lifetime ends: what a DHCP client or SLAAC sets up.
func (a Addr) Dynamic() bool {
	return a.Valid != Forever && a.Flags&flagPermanent == 0
}

// V6 reports whether a is an IPv6 address.
func (a Addr) V6() bool { return a.Prefix.Addr().Is6() && !a.Prefix.Addr().Is4In6() }

// slaac reports whether a dynamic IPv6 address looks made by SLAAC rather
// than DHCPv6: DHCPv6 clients (dhclient, dhcpcd, networkd, NetworkManager)
// add IA_NA addresses as /128, SLAAC adds the /64 of the router
// advertisement and its temporary addresses. inLease overrides the guess
// for an address a dhclient lease file lists.
func (a Addr) slaac(inLease bool) bool {
	if !a.V6() || inLease {
		return false
	}
	if a.Prefix.Addr().IsLinkLocalUnicast() {
		return true
	}
	return a.Flags&(flagTemporary|flagManageTempAdr) != 0 || a.Prefix.Bits() != 128
}

// family returns 4 or 6.
func (a Addr) family() int {
	if a.V6() {
		return 6
	}
	return 4
}

// seconds returns a lifetime in whole seconds, -1 for Forever.
func seconds(d time.Duration) int64 {
	if d == Forever {
		return -1
	}
	return int64(d / time.Second)
}
