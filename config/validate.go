package config

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Key is the key's path, such as "step.limit" or "source[1].minpoll"
	// (indexes count from 0); empty for a syntax error.
	Key string
	// Line is the line in the file, counting from 1; 0 if unknown.
	Line int
	// Col is the column of a syntax error, counting characters from 1; 0
	// otherwise.
	Col int
	// Msg says what is wrong.
	Msg string
}

// ValidationError lists every problem found in a configuration, sorted by
// line (problems without one last).
type ValidationError struct {
	// File is the file the configuration was read from; empty if it was
	// built in code.
	File     string
	Problems []Problem
}

// Error prints one problem per line: "FILE:LINE: KEY: message", leaving out
// what is unknown ("FILE:LINE:COL: message" for a syntax error).
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		var where []string
		for _, s := range []string{e.File, itoa(p.Line), itoa(p.Col)} {
			if s != "" {
				where = append(where, s)
			}
		}
		parts := []string{strings.Join(where, ":"), p.Key, p.Msg}
		lines[i] = strings.Join(slices.DeleteFunc(parts, func(s string) bool { return s == "" }), ": ")
	}
	return strings.Join(lines, "\n")
}

// itoa formats a positive number; 0 becomes "".
func itoa(n int) string {
	if n <= 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// newValidationError sorts problems by line, keeping the order of problems
// on the same line, and those without a line last.
func newValidationError(file string, problems []Problem) *ValidationError {
	slices.SortStableFunc(problems, func(a, b Problem) int {
		return cmp.Compare(sortLine(a.Line), sortLine(b.Line))
	})
	return &ValidationError{File: file, Problems: problems}
}

func sortLine(line int) int {
	if line <= 0 {
		return int(^uint(0) >> 1)
	}
	return line
}

// Values accepted by keys that take a word.
var (
	dhcpRenewers = []string{"auto", "off", "dhclient", "dhcpcd", "udhcpc", "networkd", "networkmanager"}
	// "step" and "slew" are the first names of "proceed" and "abort".
	onFailures  = []string{"auto", "proceed", "abort", "hold", "step", "slew"}
	onPostFails = []string{"proceed", "abort"}
	logLevels   = []string{"debug", "info", "warn", "error"}
	logFormats  = []string{"text", "json"}
)

// groupName matches a POSIX group name (with the common allowance for a
// trailing $ and upper case) or a numeric group id.
var groupName = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_.-]{0,31}\$?|[0-9]{1,10})$`)

// Range limits of Validate's checks.
const (
	maxSlewRatePPM = 100000 // the kernel's limit (tick adjustment included)
	maxStratum     = 15
	minTableSize   = 16
	maxTableSize   = 1 << 24
)

// Validate checks every value and reports all problems at once as a
// *ValidationError; nil if there are none. For a Config made by Load it
// names the file and the lines.
//
// It checks that each source has exactly one of server or pool, a valid host
// name or address, a port in 1..65535, PollMinLog2 <= minpoll <= maxpoll <=
// PollMaxLog2, maxsources >= 1 for a pool, and is not a duplicate; that step
// threshold and panic are not negative, limit >= -1 and panic (unless 0) is
// greater than threshold; max_slew_rate_ppm is in (0, 100000]; listen
// addresses are IP:port (IPv6 in brackets; an empty host is every address);
// allow and deny are CIDRs or bare addresses (see ParsePrefix);
// local_stratum is 0..15; the rate limit has interval > 0, burst >= 1 and
// table_size in [16, 2^24]; run.user is a user name or uid; hooks are
// non-empty commands with an absolute program path and a timeout > 0; the
// words of dhcp_renew, the on_failure keys and log are known ones;
// control.group is a group name or number; and file paths are absolute.
func (c *Config) Validate() error {
	v := &validator{origin: c.origin}
	v.sources(c.Sources)
	v.path("driftfile", c.DriftFile)
	v.step(c.Step)
	if r := c.Clock.MaxSlewRatePPM; !(r > 0 && r <= maxSlewRatePPM) {
		v.add("clock.max_slew_rate_ppm", "%g is out of range: want more than 0 and at most %d", r, maxSlewRatePPM)
	}
	v.server(c.Server)
	v.hooks(c.Hooks)
	v.path("control.socket", c.Control.Socket)
	if g := c.Control.Group; g != "" && !groupName.MatchString(g) {
		v.add("control.group", "%q is not a group name or number", g)
	}
	if c.Metrics.Listen != "" {
		v.hostPort("metrics.listen", c.Metrics.Listen)
	}
	v.path("audit.journal", c.Audit.Journal)
	v.oneOf("log.level", c.Log.Level, logLevels)
	v.oneOf("log.format", c.Log.Format, logFormats)
	if u := c.Run.User; u != "" && !validUserName(u) {
		v.add("run.user", "%q is not a user name (letters, digits, '_', '-' and '.', not starting with '-', at most 32) or a numeric uid", u)
	}
	if len(v.problems) == 0 {
		return nil
	}
	file := ""
	if c.origin != nil {
		file = c.origin.file
	}
	return newValidationError(file, v.problems)
}

// validator collects the problems Validate finds.
type validator struct {
	origin   *origin
	problems []Problem
}

func (v *validator) add(key, format string, args ...any) {
	v.problems = append(v.problems, Problem{Key: key, Line: v.origin.line(key), Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) sources(sources []Source) {
	seen := map[string]int{} // host and port → index
	for i, s := range sources {
		key := fmt.Sprintf("source[%d]", i)
		host, kind := s.Server, "server"
		switch {
		case s.Server != "" && s.Pool != "":
			v.add(key, "set either server or pool, not both")
		case s.Server == "" && s.Pool == "":
			v.add(key, "set server or pool")
		case s.Pool != "":
			host, kind = s.Pool, "pool"
		}
		if host != "" {
			if err := checkHost(host); err != nil {
				v.add(key+"."+kind, "%v", err)
			}
			id := net.JoinHostPort(strings.ToLower(strings.TrimSuffix(host, ".")), strconv.Itoa(s.Port))
			if j, dup := seen[id]; dup {
				v.add(key+"."+kind, "%q duplicates source[%d]", host, j)
			} else {
				seen[id] = i
			}
		}
		v.intRange(key+".port", s.Port, 1, 65535)
		v.intRange(key+".minpoll", s.MinPoll, PollMinLog2, PollMaxLog2)
		v.intRange(key+".maxpoll", s.MaxPoll, PollMinLog2, PollMaxLog2)
		if s.MinPoll > s.MaxPoll {
			v.add(key+".minpoll", "%d is greater than maxpoll %d", s.MinPoll, s.MaxPoll)
		}
		if s.Pool != "" && s.MaxSources < 1 {
			v.add(key+".maxsources", "%d: a pool needs at least 1", s.MaxSources)
		}
	}
}

func (v *validator) step(s Step) {
	if s.Threshold.Duration < 0 {
		v.add("step.threshold", "%v is negative", s.Threshold)
	}
	if s.Limit < -1 {
		v.add("step.limit", "%d: want -1 (step at any time) or a count of at least 0", s.Limit)
	}
	switch {
	case s.Panic.Duration < 0:
		v.add("step.panic", "%v is negative", s.Panic)
	case s.Panic.Duration != 0 && s.Panic.Duration <= s.Threshold.Duration:
		v.add("step.panic", "%v must be greater than step.threshold (%v), or 0 to disable the check", s.Panic, s.Threshold)
	}
}

func (v *validator) server(s Server) {
	if s.Enabled && len(s.Listen) == 0 {
		v.add("server.listen", "the server is enabled but has no address to listen on")
	}
	for i, addr := range s.Listen {
		v.hostPort(fmt.Sprintf("server.listen[%d]", i), addr)
	}
	for _, list := range []struct {
		key      string
		prefixes []string
	}{{"server.allow", s.Allow}, {"server.deny", s.Deny}} {
		for i, p := range list.prefixes {
			if _, err := ParsePrefix(p); err != nil {
				v.add(fmt.Sprintf("%s[%d]", list.key, i), "%v", err)
			}
		}
	}
	v.intRange("server.local_stratum", s.LocalStratum, 0, maxStratum)
	r := s.RateLimit
	v.positive("server.ratelimit.interval", r.Interval.Duration)
	if r.Burst < 1 {
		v.add("server.ratelimit.burst", "%d: want at least 1", r.Burst)
	}
	v.intRange("server.ratelimit.table_size", r.TableSize, minTableSize, maxTableSize)
}

func (v *validator) hooks(h Hooks) {
	for _, list := range []struct {
		key      string
		commands [][]string
	}{{"hooks.pre_step", h.PreStep}, {"hooks.post_step", h.PostStep}, {"hooks.external_step", h.ExternalStep}} {
		for i, argv := range list.commands {
			key := fmt.Sprintf("%s[%d]", list.key, i)
			switch {
			case len(argv) == 0 || argv[0] == "":
				v.add(key, "empty command")
			case !filepath.IsAbs(argv[0]):
				v.add(key, "program %q must be an absolute path (hooks run without a shell or $PATH)", argv[0])
			}
		}
	}
	v.oneOf("hooks.dhcp_renew", h.DHCPRenew, dhcpRenewers)
	v.positive("hooks.timeout", h.Timeout.Duration)
	v.oneOf("hooks.on_failure", h.OnFailure, onFailures)
	v.oneOf("hooks.post_step_on_failure", h.PostStepOnFailure, onPostFails)
	v.oneOf("hooks.external_step_on_failure", h.ExternalStepOnFailure, onPostFails)
}

func (v *validator) intRange(key string, n, lo, hi int) {
	if n < lo || n > hi {
		v.add(key, "%d is out of range %d..%d", n, lo, hi)
	}
}

func (v *validator) positive(key string, d time.Duration) {
	if d <= 0 {
		v.add(key, "%v: want more than 0", d)
	}
}

func (v *validator) oneOf(key, value string, allowed []string) {
	if !slices.Contains(allowed, value) {
		v.add(key, "%q: want one of %s", value, quoteList(allowed, "or"))
	}
}

// path checks a file path; "" (disabled) is fine.
func (v *validator) path(key, path string) {
	if path != "" && !filepath.IsAbs(path) {
		v.add(key, "%q must be an absolute path", path)
	}
}

func (v *validator) hostPort(key, addr string) {
	if err := checkHostPort(addr); err != nil {
		v.add(key, "%v", err)
	}
}

// validUserName accepts what useradd accepts by default (and a numeric
// uid): the value is looked up in the user database only when the daemon
// starts, on the host it runs on.
func validUserName(u string) bool {
	if len(u) > 32 || u[0] == '-' {
		return false
	}
	return strings.Trim(u, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") == "" && u != "." && u != ".."
}

// checkHostPort checks a listen address: an IP address, or empty for every
// address, and a port 0..65535 (0 picks a free port).
func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf(`%q is not host:port (write IPv6 addresses in brackets, like "[::1]:123")`, addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: port %q is not a number in 0..65535", addr, port)
	}
	if _, err := netip.ParseAddr(host); host != "" && err != nil {
		return fmt.Errorf("%q: host %q must be an IP address, or empty for every address", addr, host)
	}
	return nil
}

// checkHost checks the host of a source: an IP address (with a zone for a
// link-local IPv6 one) or a DNS name.
func checkHost(host string) error {
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	name := strings.TrimSuffix(host, ".")
	ok := name != "" && len(name) <= 253
	for label := range strings.SplitSeq(name, ".") {
		ok = ok && label != "" && len(label) <= 63 && !strings.HasPrefix(label, "-") &&
			strings.Trim(label, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == ""
	}
	switch {
	case ok:
		return nil
	case strings.ContainsAny(host, ":[]"):
		return fmt.Errorf("%q is not a host name or IP address (give the port as port = N, and IPv6 addresses without brackets)", host)
	default:
		return fmt.Errorf("%q is not a host name or IP address", host)
	}
}

// ParsePrefix parses an entry of server.allow or server.deny: a CIDR
// ("192.0.2.0/24", "2001:db8::/32") or a bare address, which is a single
// host (/32 or /128). The prefix is returned masked ("192.0.2.7/24" is
// 192.0.2.0/24).
func ParsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.Prefix{}, fmt.Errorf(`%q is not a CIDR ("192.0.2.0/24", "2001:db8::/32") or an IP address`, s)
}

// quoteList formats words as `"a", "b" or "c"`, with "or" or "and".
func quoteList(words []string, conj string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = strconv.Quote(w)
	}
	if len(q) < 2 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " " + conj + " " + q[len(q)-1]
}
