package ntpserve

import (
	"fmt"
	"net/netip"
	"strings"
)

// ACL is an access list of client networks. Deny wins over Allow; an empty
// Allow list allows every address that is not denied. IPv4-mapped IPv6
// addresses (from a dual-stack socket) match IPv4 prefixes. The zero value
// allows everybody.
type ACL struct {
	allow, deny []netip.Prefix
}

// NewACL parses allow and deny lists of CIDR prefixes ("192.0.2.0/24",
// "2001:db8::/32") or single addresses ("192.0.2.7", "::1").
func NewACL(allow, deny []string) (*ACL, error) {
	a := &ACL{}
	var err error
	if a.allow, err = parsePrefixes("allow", allow); err != nil {
		return nil, err
	}
	if a.deny, err = parsePrefixes("deny", deny); err != nil {
		return nil, err
	}
	return a, nil
}

func parsePrefixes(what string, list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		var p netip.Prefix
		if strings.Contains(s, "/") {
			var err error
			if p, err = netip.ParsePrefix(s); err != nil {
				return nil, fmt.Errorf("%s %q: not a CIDR prefix: %w", what, s, err)
			}
		} else {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("%s %q: not an address or CIDR prefix: %w", what, s, err)
			}
			if a.Zone() != "" {
				return nil, fmt.Errorf("%s %q: zones are not supported", what, s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		// A prefix written as ::ffff:a.b.c.d/n (n ≥ 96) means an IPv4 network.
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Allowed reports whether addr may be served.
func (a *ACL) Allowed(addr netip.Addr) bool {
	if a == nil {
		return true
	}
	addr = addr.Unmap().WithZone("")
	for _, p := range a.deny {
		if p.Contains(addr) {
			return false
		}
	}
	if len(a.allow) == 0 {
		return true
	}
	for _, p := range a.allow {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
