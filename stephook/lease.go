package stephook

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Lease is one lease from an ISC dhclient lease file (dhclient.leases(5)):
// a "lease { ... }" block for DHCPv4 or a "lease6 { ... }" block for
// DHCPv6. Times are wall-clock times as dhclient computed them; zero when
// absent or "never".
type Lease struct {
	// V6 is true for a lease6 block.
	V6 bool
	// Interface is the interface the lease was obtained on.
	Interface string
	// Address is the leased address (fixed-address; for DHCPv6 the first
	// iaaddr of the first IA_NA), invalid if the block has none.
	Address netip.Addr
	// PrefixLen comes from option subnet-mask (DHCPv4); 0 if absent.
	PrefixLen int
	// LeaseTime is option dhcp-lease-time (DHCPv4) or the max-life of the
	// address (DHCPv6): the valid lifetime the address gets when bound.
	LeaseTime time.Duration
	// PreferredLife is the preferred-life of a DHCPv6 address; for DHCPv4
	// the lease time (dhclient gives both lifetimes the lease time).
	PreferredLife time.Duration
	// Renew (T1), Rebind (T2) and Expire are when dhclient renews,
	// rebinds and gives the lease up, by its wall clock.
	Renew, Rebind, Expire time.Time
	// Addrs lists every address of a DHCPv6 lease (every iaaddr of every
	// IA_NA and IA_TA), each with its lifetimes.
	Addrs []LeaseAddr
}

// LeaseAddr is one iaaddr of a DHCPv6 lease.
type LeaseAddr struct {
	Address       netip.Addr
	Starts        time.Time
	PreferredLife time.Duration
	MaxLife       time.Duration
}

// ErrLeaseSyntax is wrapped by ParseLeases for a file it could not read
// whole.
var ErrLeaseSyntax = errors.New("lease file syntax")

// ParseLeases reads an ISC dhclient lease file (IPv4 or IPv6). It returns
// every well-formed lease, in file order (dhclient appends, so the newest
// lease of an interface is the last). Garbage — an unknown statement, a bad
// date, an unterminated block — is skipped; the error, wrapping
// ErrLeaseSyntax, describes the first such problem while the leases found
// are still returned.
func ParseLeases(data []byte) ([]Lease, error) {
	p := &leaseParser{lex: lexer{s: string(data)}}
	stmts := p.block(0)
	var leases []Lease
	for _, st := range stmts {
		if len(st.words) != 1 || st.body == nil {
			continue // default-duid, server-duid, ...
		}
		switch st.words[0] {
		case "lease":
			if l, ok := p.lease4(st.body); ok {
				leases = append(leases, l)
			}
		case "lease6":
			if l, ok := p.lease6(st.body); ok {
				leases = append(leases, l)
			}
		}
	}
	return leases, p.err
}

// withoutLeases6 returns the lease file data without the lease6 blocks of
// iface, keeping everything else (default-duid above all: the DUID is what
// the server knows the client by).
func withoutLeases6(data []byte, iface string) []byte {
	p := &leaseParser{lex: lexer{s: string(data)}}
	var out []byte
	last := 0
	for _, st := range p.block(0) {
		if len(st.words) != 1 || st.words[0] != "lease6" || st.body == nil {
			continue
		}
		for _, b := range st.body {
			if b.body == nil && len(b.words) == 2 && b.words[0] == "interface" && b.words[1] == iface {
				out = append(out, data[last:st.start]...)
				last = st.end
				break
			}
		}
	}
	return append(out, data[last:]...)
}

// LatestLease returns the last lease in leases for the interface (any
// interface if iface is "") and family (4 or 6), and whether there is one.
func LatestLease(leases []Lease, iface string, family int) (Lease, bool) {
	for i := len(leases) - 1; i >= 0; i-- {
		l := leases[i]
		if (iface == "" || l.Interface == iface) && l.V6 == (family == 6) {
			return l, true
		}
	}
	return Lease{}, false
}

// stmt is a statement: words up to ";" or a block "words { body }".
type stmt struct {
	words []string
	body  []stmt // nil unless a block
	line  int
	// start and end are the byte offsets of the statement in the file.
	start, end int
}

type leaseParser struct {
	lex lexer
	err error
}

func (p *leaseParser) fail(line int, format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("%w: line %d: %s", ErrLeaseSyntax, line, fmt.Sprintf(format, args...))
	}
}

// maxDepth bounds nesting (leases nest three deep) so that garbage cannot
// recurse without limit.
const maxDepth = 8

// block reads statements until "}" or the end of the input.
func (p *leaseParser) block(depth int) []stmt {
	var out []stmt
	var words []string
	line, start := 0, 0
	for {
		tok, tline, ok := p.lex.next()
		tstart := p.lex.tokStart
		if !ok {
			if len(words) > 0 {
				p.fail(tline, "statement %q not ended by ';'", strings.Join(words, " "))
			}
			if depth > 0 {
				p.fail(tline, "block not closed")
			}
			return out
		}
		if len(words) == 0 {
			line, start = tline, tstart
		}
		switch tok {
		case ";":
			if len(words) > 0 {
				out = append(out, stmt{words: words, line: line, start: start, end: p.lex.pos})
			}
			words = nil
		case "{":
			if depth >= maxDepth {
				p.fail(tline, "blocks nested too deep")
				p.lex.s = "" // give up on the rest
				return out
			}
			body := p.block(depth + 1)
			if body == nil {
				body = []stmt{}
			}
			out = append(out, stmt{words: words, body: body, line: line, start: start, end: p.lex.pos})
			words = nil
		case "}":
			if depth == 0 {
				p.fail(tline, "unexpected '}'")
				continue
			}
			if len(words) > 0 {
				p.fail(tline, "statement %q not ended by ';'", strings.Join(words, " "))
			}
			return out
		default:
			words = append(words, tok)
		}
	}
}

func (p *leaseParser) lease4(body []stmt) (Lease, bool) {
	l := Lease{}
	for _, st := range body {
		w := st.words
		if st.body != nil || len(w) == 0 {
			continue
		}
		switch {
		case w[0] == "interface" && len(w) == 2:
			l.Interface = w[1]
		case w[0] == "fixed-address" && len(w) == 2:
			a, err := netip.ParseAddr(w[1])
			if err != nil || !a.Is4() {
				p.fail(st.line, "fixed-address %q", w[1])
				return l, false
			}
			l.Address = a
		case w[0] == "option" && len(w) == 3 && w[1] == "subnet-mask":
			ip := net.ParseIP(w[2]).To4()
			ones, bits := net.IPMask(ip).Size()
			if ip == nil || bits != 32 {
				p.fail(st.line, "subnet-mask %q", w[2])
				continue
			}
			l.PrefixLen = ones
		case w[0] == "option" && len(w) == 3 && w[1] == "dhcp-lease-time":
			d, ok := parseSeconds(w[2])
			if !ok {
				p.fail(st.line, "dhcp-lease-time %q", w[2])
				return l, false
			}
			l.LeaseTime, l.PreferredLife = d, d
		case w[0] == "renew" || w[0] == "rebind" || w[0] == "expire":
			t, ok := parseLeaseDate(w[1:])
			if !ok {
				p.fail(st.line, "%s date %q", w[0], strings.Join(w[1:], " "))
				return l, false
			}
			switch w[0] {
			case "renew":
				l.Renew = t
			case "rebind":
				l.Rebind = t
			default:
				l.Expire = t
			}
		}
	}
	if !l.Address.IsValid() {
		p.fail(0, "lease without fixed-address")
		return l, false
	}
	return l, true
}

func (p *leaseParser) lease6(body []stmt) (Lease, bool) {
	l := Lease{V6: true}
	for _, st := range body {
		w := st.words
		switch {
		case st.body == nil && len(w) == 2 && w[0] == "interface":
			l.Interface = w[1]
		case st.body != nil && len(w) == 2 && (w[0] == "ia-na" || w[0] == "ia-ta"):
			if !p.ia(&l, w[0] == "ia-na", st.body) {
				return l, false
			}
		}
	}
	if len(l.Addrs) == 0 {
		p.fail(0, "lease6 without an address")
		return l, false
	}
	return l, true
}

// ia reads an ia-na or ia-ta block: starts, renew and rebind (seconds after
// starts) and its iaaddr blocks.
func (p *leaseParser) ia(l *Lease, na bool, body []stmt) bool {
	var starts time.Time
	var renew, rebind time.Duration
	hasRenew, hasRebind := false, false
	first := len(l.Addrs)
	for _, st := range body {
		w := st.words
		switch {
		case st.body == nil && len(w) == 2 && w[0] == "starts":
			t, ok := parseEpoch(w[1])
			if !ok {
				p.fail(st.line, "starts %q", w[1])
				return false
			}
			starts = t
		case st.body == nil && len(w) == 2 && (w[0] == "renew" || w[0] == "rebind"):
			d, ok := parseSeconds(w[1])
			if !ok {
				p.fail(st.line, "%s %q", w[0], w[1])
				return false
			}
			if w[0] == "renew" {
				renew, hasRenew = d, true
			} else {
				rebind, hasRebind = d, true
			}
		case st.body != nil && len(w) == 2 && w[0] == "iaaddr":
			a, err := netip.ParseAddr(w[1])
			if err != nil || !a.Is6() {
				p.fail(st.line, "iaaddr %q", w[1])
				return false
			}
			la := LeaseAddr{Address: a}
			for _, s := range st.body {
				if s.body != nil || len(s.words) != 2 {
					continue
				}
				var ok bool
				switch s.words[0] {
				case "starts":
					la.Starts, ok = parseEpoch(s.words[1])
				case "preferred-life":
					la.PreferredLife, ok = parseSeconds(s.words[1])
				case "max-life":
					la.MaxLife, ok = parseSeconds(s.words[1])
				default:
					ok = true
				}
				if !ok {
					p.fail(s.line, "%s %q", s.words[0], s.words[1])
					return false
				}
			}
			l.Addrs = append(l.Addrs, la)
		}
	}
	if !na || len(l.Addrs) == first || l.Address.IsValid() {
		return true
	}
	a := l.Addrs[first]
	l.Address, l.LeaseTime, l.PreferredLife = a.Address, a.MaxLife, a.PreferredLife
	if !starts.IsZero() {
		// A renew or rebind of 0 means the server left T1/T2 to the client.
		if hasRenew && renew > 0 {
			l.Renew = starts.Add(renew)
		}
		if hasRebind && rebind > 0 {
			l.Rebind = starts.Add(rebind)
		}
	}
	if t := a.Starts; !t.IsZero() && a.MaxLife > 0 {
		l.Expire = t.Add(a.MaxLife)
	}
	return true
}

// maxLeaseSeconds bounds lifetimes: DHCP carries 32-bit seconds.
const maxLeaseSeconds = 1<<32 - 1

func parseSeconds(s string) (time.Duration, bool) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > maxLeaseSeconds {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

// parseEpoch reads seconds since 1970 (IPv6 starts), within year 1..9999.
func parseEpoch(s string) (time.Time, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > 253402300799 {
		return time.Time{}, false
	}
	return time.Unix(n, 0).UTC(), true
}

// parseLeaseDate reads the date of renew, rebind or expire: "W
// YYYY/MM/DD HH:MM:SS" in UTC (W is the weekday, 0 = Sunday, and is not
// checked), "epoch N" (db-time-format local), or "never" (zero time).
func parseLeaseDate(w []string) (time.Time, bool) {
	switch {
	case len(w) == 1 && w[0] == "never":
		return time.Time{}, true
	case len(w) == 2 && w[0] == "epoch":
		return parseEpoch(w[1])
	case len(w) == 3 && len(w[0]) == 1 && w[0][0] >= '0' && w[0][0] <= '6':
		t, err := time.Parse("2006/01/02 15:04:05", w[1]+" "+w[2])
		return t, err == nil
	}
	return time.Time{}, false
}

// lexer splits a lease file into words, strings (unquoted, escapes
// resolved), and the punctuation "{", "}", ";". Comments run from "#" to
// the end of the line.
type lexer struct {
	s        string
	pos      int
	line     int
	tokStart int // offset of the token next returned
}

func (l *lexer) next() (tok string, line int, ok bool) {
	if l.line == 0 {
		l.line = 1
	}
	for l.pos < len(l.s) {
		c := l.s[l.pos]
		switch {
		case c == '\n':
			l.line++
			l.pos++
		case c == ' ' || c == '\t' || c == '\r':
			l.pos++
		case c == '#':
			for l.pos < len(l.s) && l.s[l.pos] != '\n' {
				l.pos++
			}
		case c == '{' || c == '}' || c == ';':
			l.tokStart = l.pos
			l.pos++
			return string(c), l.line, true
		case c == '"':
			l.tokStart = l.pos
			return l.quoted(), l.line, true
		default:
			start := l.pos
			l.tokStart = start
			for l.pos < len(l.s) && !strings.ContainsRune(" \t\r\n{};\"#", rune(l.s[l.pos])) {
				l.pos++
			}
			return l.s[start:l.pos], l.line, true
		}
	}
	return "", l.line, false
}

// quoted reads a string in double quotes with \" \\ and \ooo (octal)
// escapes, as dhclient writes them.
func (l *lexer) quoted() string {
	var b strings.Builder
	l.pos++ // opening quote
	for l.pos < len(l.s) {
		c := l.s[l.pos]
		switch {
		case c == '"':
			l.pos++
			return b.String()
		case c == '\n':
			l.line++
			b.WriteByte(c)
			l.pos++
		case c == '\\' && l.pos+1 < len(l.s):
			l.pos++
			if n, ok := octal(l.s[l.pos:]); ok {
				b.WriteByte(n)
				l.pos += 3
				continue
			}
			b.WriteByte(l.s[l.pos])
			l.pos++
		default:
			b.WriteByte(c)
			l.pos++
		}
	}
	return b.String()
}

func octal(s string) (byte, bool) {
	if len(s) < 3 {
		return 0, false
	}
	n := 0
	for _, c := range s[:3] {
		if c < '0' || c > '7' {
			return 0, false
		}
		n = n*8 + int(c-'0')
	}
	if n > 255 {
		return 0, false
	}
	return byte(n), true
}
