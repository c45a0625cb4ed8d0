package config

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Flavour is the dialect of a configuration file that Import reads.
type Flavour string

// The flavours Import reads.
const (
	// Auto detects the flavour from the directives in the file.
	Auto Flavour = ""
	// NTP is the ntp.conf of ntpd (ntp.org) and NTPsec.
	NTP Flavour = "ntp"
	// Chrony is chrony.conf.
	Chrony Flavour = "chrony"
)

// ParseFlavour parses a flavour name: "ntp" (or "ntpd", "ntpsec"),
// "chrony", or "auto" or "" for Auto.
func ParseFlavour(s string) (Flavour, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return Auto, nil
	case "ntp", "ntpd", "ntpsec":
		return NTP, nil
	case "chrony", "chronyd":
		return Chrony, nil
	}
	return Auto, fmt.Errorf("unknown flavour %q: want ntp, chrony or auto", s)
}

// file names the flavour's configuration file.
func (f Flavour) file() string { return string(f) + ".conf" }

// article is "a" or "an", for the flavour's file name.
func (f Flavour) article() string {
	if f == NTP {
		return "an"
	}
	return "a"
}

// daemon names the daemon that reads the flavour's file.
func (f Flavour) daemon() string { return string(f) + "d" }

// Note is a directive, or part of one, that Import did not import.
type Note struct {
	// Line is the directive's line in the imported file, counting from 1.
	Line int
	// Text is the directive as written, without its comment.
	Text string
	// Why says why it was not imported.
	Why string
}

// String formats the note as Imported.TOML writes it, in a comment:
// "not imported (line N): TEXT — WHY".
func (n Note) String() string {
	return fmt.Sprintf("not imported (line %d): %s — %s", n.Line, n.Text, n.Why)
}

// Imported is a configuration imported from ntp.conf or chrony.conf.
type Imported struct {
	// Name is the file name given to Import.
	Name string
	// Flavour is the dialect the file was read as.
	Flavour Flavour
	// Detected reports that Flavour was detected rather than asked for.
	Detected bool
	// Config is the imported configuration: Default with what the file
	// says. It passes Validate.
	Config Config
	// Skipped lists what was not imported, in file order.
	Skipped []Note

	// comments explain the decisions Import made, by table path as
	// encoder.comments has them.
	comments map[string][]string
	// set lists the key paths the file set, to write them even when they
	// equal the defaults.
	set map[string]bool
}

// TOML returns the imported configuration as a TOML file that Load
// accepts: a header naming the imported file, a "not imported" comment for
// each Skipped note, then the keys the file set or whose values differ
// from the defaults, with comments where Import made a decision. The output
// depends only on the input.
func (im *Imported) TOML() string {
	var b strings.Builder
	how := "detected from its directives"
	if !im.Detected {
		how = "as asked"
	}
	b.WriteString(comment(fmt.Sprintf("ntptool configuration imported from %s (read as %s, %s)", im.Name, im.Flavour.file(), how)) + "\n")
	b.WriteString(`# by "ntptool config import". Keys not written here keep their defaults:
# "ntptool config default" lists them. Check it with "ntptool config check".
`)
	if len(im.Skipped) > 0 {
		b.WriteString("#\n")
		for _, n := range im.Skipped {
			b.WriteString(comment(n.String()) + "\n")
		}
	}
	b.WriteString("\n")
	def := Default()
	e := encoder{b: &b, comments: im.comments, keep: im.set}
	e.table("", reflect.ValueOf(im.Config), reflect.ValueOf(def))
	return b.String()
}

// Import reads an ntpd/NTPsec ntp.conf or a chrony.conf (from is Auto to
// detect which) and maps what it can onto an ntptool configuration:
// servers, pools and peers with their port, minpoll, maxpoll, iburst and
// prefer options; the drift file; the step policy (chrony's makestep, ntpd's
// tinker step and panic); access control (chrony's allow and deny, ntpd's
// restrict), rate limiting, local stratum (chrony's local, ntpd's tos
// orphan) and chrony's maxslewrate and port. Whatever it cannot map is
// listed in Skipped with the reason. Serving is enabled as the original
// daemon would serve: ntpd always does, chronyd only with an allow
// directive. It fails only if from is not a Flavour or reading r fails.
func Import(r io.Reader, name string, from Flavour) (*Imported, error) {
	if from != Auto && from != NTP && from != Chrony {
		return nil, fmt.Errorf("import %s: unknown flavour %q", name, from)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", name, err)
	}
	var dirs []directive
	for i, line := range strings.Split(string(data), "\n") {
		if d, ok := parseDirective(i+1, line); ok {
			dirs = append(dirs, d)
		}
	}
	im := &importer{
		Imported: &Imported{Name: name, Flavour: from, Config: Default(), comments: map[string][]string{}, set: map[string]bool{}},
		sources:  map[string]int{},
	}
	if from == Auto {
		im.Flavour, im.Detected = detect(dirs, name), true
	}
	for _, d := range dirs {
		im.directive(d)
	}
	im.finish()
	return im.Imported, nil
}

// directive is one line of ntp.conf or chrony.conf.
type directive struct {
	line int
	text string // as written, without its comment
	name string // lower case
	args []string
}

// parseDirective splits a line into a directive; ok is false for a blank or
// comment line. Both dialects start comments with "#"; chrony also takes
// lines starting with "!", ";" or "%" as comments.
func parseDirective(n int, line string) (d directive, ok bool) {
	text, _, _ := strings.Cut(line, "#")
	text = strings.TrimSpace(text)
	if text == "" || strings.ContainsAny(text[:1], "!;%") {
		return directive{}, false
	}
	f := strings.Fields(text)
	return directive{line: n, text: text, name: strings.ToLower(f[0]), args: f[1:]}, true
}

// Reasons for directives with no ntptool equivalent.
const (
	whyInclude   = "included files are not read: import each of them separately"
	whySourceDir = "source directories (such as servers from DHCP) are not read: add those servers as [[source]] tables"
	whyAuth      = "authentication (symmetric keys, Autokey, NTS) is not supported"
	whyStats     = "statistics files are not supported: see [metrics] and the [audit] journal"
	whyLeap      = "leap-second files are not supported"
	whyRTC       = "RTC tracking is not supported"
	whyRTCSync   = "always on: while synchronised, ntptool lets the kernel's 11-minute RTC sync run"
	whyRefclock  = "reference clocks are not supported"
	whyBroadcast = "broadcast and manycast modes are not supported"
	whyControl   = "the control socket is local only: see [control]"
	whyListen    = "set the addresses to serve on with server.listen"
	whyNone      = "no ntptool equivalent"
)

// spec says how Import handles a directive.
type spec struct {
	flavour Flavour                    // the dialect it belongs to; Auto for both
	handle  func(*importer, directive) // nil: not imported, for the reason why
	why     string
}

// directives are the directives Import knows, by name. The flavours also
// tell ntp.conf from chrony.conf.
var directives = map[string]spec{
	// Both dialects.
	"server":    {handle: (*importer).source},
	"pool":      {handle: (*importer).source},
	"peer":      {handle: (*importer).source},
	"driftfile": {handle: (*importer).driftFile},
	"include":   {why: whyInclude},
	"refclock":  {why: whyRefclock},
	"broadcast": {why: whyBroadcast},
	"pidfile":   {},

	// chrony.conf.
	"makestep":        {flavour: Chrony, handle: (*importer).makeStep},
	"allow":           {flavour: Chrony, handle: (*importer).chronyAccess},
	"deny":            {flavour: Chrony, handle: (*importer).chronyAccess},
	"local":           {flavour: Chrony, handle: (*importer).local},
	"ratelimit":       {flavour: Chrony, handle: (*importer).chronyRateLimit},
	"maxslewrate":     {flavour: Chrony, handle: (*importer).maxSlewRate},
	"port":            {flavour: Chrony, handle: (*importer).port},
	"confdir":         {flavour: Chrony, why: whyInclude},
	"sourcedir":       {flavour: Chrony, why: whySourceDir},
	"keyfile":         {flavour: Chrony, why: whyAuth},
	"ntsdumpdir":      {flavour: Chrony, why: whyAuth},
	"ntsserverkey":    {flavour: Chrony, why: whyAuth},
	"ntsservercert":   {flavour: Chrony, why: whyAuth},
	"ntstrustedcerts": {flavour: Chrony, why: whyAuth},
	"logdir":          {flavour: Chrony, why: whyStats},
	"log":             {flavour: Chrony, why: whyStats},
	"dumpdir":         {flavour: Chrony, why: whyStats},
	"leapsectz":       {flavour: Chrony, why: whyLeap},
	"rtcsync":         {flavour: Chrony, why: whyRTCSync},
	"rtcfile":         {flavour: Chrony, why: whyRTC},
	"rtconutc":        {flavour: Chrony, why: whyRTC},
	"rtcautotrim":     {flavour: Chrony, why: whyRTC},
	"manual":          {flavour: Chrony, why: whyRefclock},
	"cmdallow":        {flavour: Chrony, why: whyControl},
	"cmddeny":         {flavour: Chrony, why: whyControl},
	"bindcmdaddress":  {flavour: Chrony, why: whyControl},
	"cmdport":         {flavour: Chrony, why: whyControl},
	"bindaddress":     {flavour: Chrony, why: whyListen},
	"maxupdateskew":   {flavour: Chrony},
	"maxdistance":     {flavour: Chrony},
	"minsources":      {flavour: Chrony},
	"maxchange":       {flavour: Chrony},
	"initstepslew":    {flavour: Chrony},
	"hwtimestamp":     {flavour: Chrony},
	"smoothtime":      {flavour: Chrony},
	"lock_all":        {flavour: Chrony},
	"sched_priority":  {flavour: Chrony},
	"user":            {flavour: Chrony},
	"clientloglimit":  {flavour: Chrony},
	"noclientlog":     {flavour: Chrony},

	// ntp.conf.
	"restrict":        {flavour: NTP, handle: (*importer).restrict},
	"tinker":          {flavour: NTP, handle: (*importer).tinker},
	"tos":             {flavour: NTP, handle: (*importer).tos},
	"discard":         {flavour: NTP, handle: (*importer).discard},
	"includefile":     {flavour: NTP, why: whyInclude},
	"leapfile":        {flavour: NTP, why: whyLeap},
	"statsdir":        {flavour: NTP, why: whyStats},
	"statistics":      {flavour: NTP, why: whyStats},
	"filegen":         {flavour: NTP, why: whyStats},
	"logfile":         {flavour: NTP, why: whyStats},
	"logconfig":       {flavour: NTP, why: whyStats},
	"keys":            {flavour: NTP, why: whyAuth},
	"trustedkey":      {flavour: NTP, why: whyAuth},
	"controlkey":      {flavour: NTP, why: whyAuth},
	"requestkey":      {flavour: NTP, why: whyAuth},
	"crypto":          {flavour: NTP, why: whyAuth},
	"nts":             {flavour: NTP, why: whyAuth},
	"fudge":           {flavour: NTP, why: whyRefclock},
	"broadcastclient": {flavour: NTP, why: whyBroadcast},
	"manycastclient":  {flavour: NTP, why: whyBroadcast},
	"manycastserver":  {flavour: NTP, why: whyBroadcast},
	"multicastclient": {flavour: NTP, why: whyBroadcast},
	"interface":       {flavour: NTP, why: whyListen},
	"nic":             {flavour: NTP, why: whyListen},
	"enable":          {flavour: NTP},
	"disable":         {flavour: NTP},
	"mru":             {flavour: NTP},
	"unrestrict":      {flavour: NTP},
}

// detect tells ntp.conf from chrony.conf by the directives only one of them
// has; on a tie (a file of servers only, say) by the file name, else ntp.
func detect(dirs []directive, name string) Flavour {
	score := map[Flavour]int{}
	for _, d := range dirs {
		score[directives[d.name].flavour]++
	}
	switch {
	case score[Chrony] > score[NTP]:
		return Chrony
	case score[NTP] > score[Chrony]:
		return NTP
	case strings.Contains(strings.ToLower(filepath.Base(name)), "chrony"):
		return Chrony
	}
	return NTP
}

// importer is the state of one Import.
type importer struct {
	*Imported
	sources map[string]int // sourceID → line, to drop duplicates

	allow, deny []aclEntry // client subnets allowed and denied
	allowAll    bool       // chrony: allow with no subnet
	allowLine   int        // chrony: the first allow directive
	defaultDeny [2]bool    // ntpd: restrict default ignore, IPv4 and IPv6
	noServe     int        // chrony: line of "port 0"

	tinkerStep bool // ntpd: tinker step was given
	limited    bool // ntpd: a restrict line has "limited"
	kod        bool // ntpd: a restrict line has "kod"
	rateLimit  bool // chrony: ratelimit was given
}

// aclEntry is an allowed or denied subnet and its line.
type aclEntry struct {
	prefix netip.Prefix
	line   int
}

// directive imports one directive.
func (im *importer) directive(d directive) {
	s, ok := directives[d.name]
	switch {
	case !ok:
		im.skip(d, "unknown directive")
	case s.flavour != Auto && s.flavour != im.Flavour:
		im.skip(d, fmt.Sprintf("%s %s directive, but the file is read as %s", s.flavour.article(), s.flavour.file(), im.Flavour.file()))
	case s.handle == nil:
		im.skip(d, cmp.Or(s.why, whyNone))
	default:
		s.handle(im, d)
	}
}

// skip notes that d is not imported.
func (im *importer) skip(d directive, why string) {
	im.Skipped = append(im.Skipped, Note{Line: d.line, Text: d.text, Why: why})
}

// leftOut notes what of d was not imported: all of it if nothing was,
// else the options in left.
func (im *importer) leftOut(d directive, left []string, imported bool) {
	switch {
	case !imported:
		im.skip(d, whyNone)
	case len(left) > 0:
		im.skip(d, fmt.Sprintf("%s: %s; the rest is imported", quoteList(left, "and"), whyNone))
	}
}

// explain adds a comment to a table, to explain a decision.
func (im *importer) explain(table, format string, args ...any) {
	im.comments[table] = append(im.comments[table], wrap(fmt.Sprintf(format, args...), 76)...)
}

// comment explains what became of directive d.
func (im *importer) comment(table string, d directive, format string, args ...any) {
	im.explain(table, "line %d: %s: %s", d.line, d.text, fmt.Sprintf(format, args...))
}

// option is a word of a directive's options and its value, if any.
type option struct{ name, value string }

// String returns the option as written.
func (o option) String() string { return strings.TrimSpace(o.name + " " + o.value) }

// valueOptions are the options of either dialect that take a value that may
// not look like a number.
var valueOptions = map[string]bool{"key": true, "extfield": true, "certset": true, "ntsname": true, "refid": true}

// options splits "name value name flag ..." into options: a name takes the
// next word as its value if it is one of valueOptions or the word is a
// number, unless it is one of flags.
func options(args []string, flags ...string) []option {
	var opts []option
	for i := 0; i < len(args); i++ {
		o := option{name: strings.ToLower(args[i])}
		if i+1 < len(args) && !slices.Contains(flags, o.name) && (valueOptions[o.name] || isNumber(args[i+1])) {
			o.value = args[i+1]
			i++
		}
		opts = append(opts, o)
	}
	return opts
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// setInt sets *p to the option's value if it is an integer in lo..hi.
func (o option) setInt(p *int, lo, hi int) bool {
	n, err := strconv.Atoi(o.value)
	if err != nil || n < lo || n > hi {
		return false
	}
	*p = n
	return true
}

// setSeconds sets *p to the option's value if it is a number of seconds,
// at least 0.
func (o option) setSeconds(p *Duration) bool {
	f, err := strconv.ParseFloat(o.value, 64)
	if err != nil || f < 0 {
		return false
	}
	d, err := seconds(f)
	if err != nil {
		return false
	}
	*p = d
	return true
}

// setLog2Seconds sets *p to 2^value seconds, the intervals of ntpd's
// discard and chrony's ratelimit.
func (o option) setLog2Seconds(p *Duration) bool {
	n := 0
	if !o.setInt(&n, -20, 20) {
		return false
	}
	p.Duration = time.Duration(math.Ldexp(float64(time.Second), n))
	return true
}

// sourceID identifies a source by host and port, to find duplicates.
func sourceID(host string, port int) string {
	return net.JoinHostPort(strings.ToLower(strings.TrimSuffix(host, ".")), strconv.Itoa(port))
}

// source imports server, pool and peer: "server [-4|-6] HOST [OPTION...]".
func (im *importer) source(d directive) {
	args := d.args
	var left []string
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		left = append(left, args[0]) // ntpd's -4 and -6
		args = args[1:]
	}
	if len(args) == 0 {
		im.skip(d, "no address")
		return
	}
	host := args[0]
	if strings.HasPrefix(host, "127.127.") {
		im.skip(d, whyRefclock) // ntpd's reference clock pseudo-addresses
		return
	}
	if err := checkHost(host); err != nil {
		im.skip(d, err.Error())
		return
	}
	def := DefaultSource()
	s := def
	if d.name == "pool" {
		s.Pool = host
	} else {
		s.Server = host
	}
	for _, o := range options(args[1:], "iburst", "prefer") {
		if !setSourceOption(&s, o) {
			left = append(left, o.String())
		}
	}
	id := sourceID(host, s.Port)
	if line, dup := im.sources[id]; dup {
		im.skip(d, fmt.Sprintf("duplicates line %d", line))
		return
	}
	im.sources[id] = d.line

	table := fmt.Sprintf("source[%d]", len(im.Config.Sources))
	if s.MinPoll > s.MaxPoll {
		if s.MaxPoll != def.MaxPoll && s.MinPoll == def.MinPoll {
			im.comment(table, d, "minpoll %d is above maxpoll: lowered to %d", s.MinPoll, s.MaxPoll)
			s.MinPoll = s.MaxPoll
		} else {
			im.comment(table, d, "maxpoll %d is below minpoll: raised to %d", s.MaxPoll, s.MinPoll)
			s.MaxPoll = s.MinPoll
		}
	}
	if d.name == "peer" {
		im.comment(table, d, "symmetric mode (peer) is not supported: this is a client association, which takes time from %s but gives it none", host)
	}
	im.leftOut(d, left, true)
	im.Config.Sources = append(im.Config.Sources, s)
}

// setSourceOption sets the option o of a source; false if it has no
// equivalent or an invalid value.
func setSourceOption(s *Source, o option) bool {
	switch o.name {
	case "iburst":
		s.IBurst = true
		return true
	case "prefer":
		s.Prefer = true
		return true
	case "minpoll":
		return o.setInt(&s.MinPoll, PollMinLog2, PollMaxLog2)
	case "maxpoll":
		return o.setInt(&s.MaxPoll, PollMinLog2, PollMaxLog2)
	case "port":
		return o.setInt(&s.Port, 1, 65535)
	case "maxsources":
		return s.Pool != "" && o.setInt(&s.MaxSources, 1, 1<<16)
	}
	return false
}

// driftFile imports "driftfile PATH".
func (im *importer) driftFile(d directive) {
	if len(d.args) != 1 || !filepath.IsAbs(d.args[0]) || !printable(d.args[0]) {
		im.skip(d, "want one absolute path")
		return
	}
	im.Config.DriftFile = d.args[0]
	im.comment("", d, "the drift file of %s; do not run both daemons, they must not share it", im.Flavour.daemon())
}

// printable reports whether s is UTF-8 without control characters, as a
// path should be.
func printable(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0
}

// makeStep imports chrony's "makestep THRESHOLD LIMIT".
func (im *importer) makeStep(d directive) {
	var threshold Duration
	var limit int
	if len(d.args) != 2 || !(option{value: d.args[0]}).setSeconds(&threshold) ||
		!(option{value: d.args[1]}).setInt(&limit, math.MinInt, math.MaxInt) {
		im.skip(d, "want makestep THRESHOLD LIMIT: seconds (0 or more) and a whole number")
		return
	}
	im.Config.Step.Threshold = threshold
	im.Config.Step.Limit = max(limit, -1) // chrony: a negative limit steps at any time
	im.keep("step.threshold", "step.limit")
}

// keep has the keys written even if they equal the defaults, as the file
// set them.
func (im *importer) keep(keys ...string) {
	for _, k := range keys {
		im.set[k] = true
	}
}

// chronyAccess imports chrony's "allow|deny [all] [SUBNET]".
func (im *importer) chronyAccess(d directive) {
	args := d.args
	if len(args) > 0 && strings.EqualFold(args[0], "all") {
		args = args[1:]
	}
	allow := d.name == "allow"
	if allow && im.allowLine == 0 {
		im.allowLine = d.line
	}
	switch {
	case len(args) > 1:
		im.skip(d, "want at most one subnet")
	case len(args) == 0:
		// Every address: "allow" serves everybody; "deny" leaves only the
		// subnets allowed after it, as the allow list does.
		im.allowAll = allow
	default:
		p, ok := chronySubnet(args[0])
		switch {
		case !ok:
			im.skip(d, "not an address or subnet (host names are not supported)")
		case allow:
			im.allow = append(im.allow, aclEntry{p, d.line})
		default:
			im.deny = append(im.deny, aclEntry{p, d.line})
		}
	}
}

// chronySubnet parses chrony's subnets: "192.0.2.7", "192.0.2.0/24",
// "192.0.2" (a /24), "10" (a /8), "2001:db8::/32".
func chronySubnet(s string) (netip.Prefix, bool) {
	addr, bits, hasBits := strings.Cut(s, "/")
	n := -1
	if parts := strings.Split(addr, "."); !strings.Contains(addr, ":") && len(parts) < 4 {
		n = 8 * len(parts)
		addr += strings.Repeat(".0", 4-len(parts))
	}
	a, err := netip.ParseAddr(addr)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, false
	}
	if n < 0 {
		n = a.BitLen()
	}
	if hasBits && !(option{value: bits}).setInt(&n, 0, a.BitLen()) {
		return netip.Prefix{}, false
	}
	p, err := a.Prefix(n)
	return p, err == nil
}

// local imports chrony's "local [stratum N] [OPTION...]".
func (im *importer) local(d directive) {
	stratum := 10 // chrony's default
	var left []string
	for _, o := range options(d.args, "orphan") {
		if o.name != "stratum" || !o.setInt(&stratum, 1, maxStratum) {
			left = append(left, o.String())
		}
	}
	im.Config.Server.LocalStratum = stratum
	im.keep("server.local_stratum")
	im.comment("server", d, "when unsynchronised, ntptool serves its own clock at stratum %d", stratum)
	im.leftOut(d, left, true)
}

// chronyRateLimit imports chrony's "ratelimit [interval N] [burst N] ...".
func (im *importer) chronyRateLimit(d directive) {
	r := &im.Config.Server.RateLimit
	// The directive turns on chrony's rate limiting, with its defaults.
	r.Enabled, r.Interval, r.Burst = true, Duration{8 * time.Second}, 8
	im.rateLimit = true
	im.keep("server.ratelimit.enabled", "server.ratelimit.interval", "server.ratelimit.burst")
	var left []string
	for _, o := range options(d.args) {
		ok := o.name == "interval" && o.setLog2Seconds(&r.Interval) ||
			o.name == "burst" && o.setInt(&r.Burst, 1, 1<<16)
		if !ok {
			left = append(left, o.String())
		}
	}
	im.leftOut(d, left, true)
}

// maxSlewRate imports chrony's "maxslewrate PPM".
func (im *importer) maxSlewRate(d directive) {
	if len(d.args) == 1 {
		if ppm, err := strconv.ParseFloat(d.args[0], 64); err == nil && ppm > 0 && ppm <= maxSlewRatePPM {
			im.Config.Clock.MaxSlewRatePPM = ppm
			im.keep("clock.max_slew_rate_ppm")
			return
		}
	}
	im.skip(d, fmt.Sprintf("want a rate above 0 and at most %d ppm", maxSlewRatePPM))
}

// port imports chrony's "port N", the port it serves on; 0 serves nobody.
func (im *importer) port(d directive) {
	n := 0
	switch {
	case len(d.args) != 1 || !(option{value: d.args[0]}).setInt(&n, 0, 65535):
		im.skip(d, "want a port number")
	case n == 0:
		im.noServe = d.line
	default:
		im.Config.Server.Listen = []string{net.JoinHostPort("", strconv.Itoa(n))}
	}
}

// restrict imports ntpd's "restrict [-4|-6] default|ADDRESS[/BITS] [mask
// MASK] [FLAG...]". ntpd applies the most specific line that matches;
// ntptool has an allow list, used when a family's default is ignore, and a
// deny list that always wins.
func (im *importer) restrict(d directive) {
	args := d.args
	family := ""
	if len(args) > 0 && (args[0] == "-4" || args[0] == "-6") {
		family, args = args[0], args[1:]
	}
	if len(args) == 0 {
		im.skip(d, "no address")
		return
	}
	target, args := args[0], args[1:]
	var prefix netip.Prefix
	switch target {
	case "default":
	case "source":
		im.skip(d, "applies to the servers that pool directives find; ntptool always accepts replies from its sources")
		return
	default:
		var err error
		if len(args) >= 2 && args[0] == "mask" {
			prefix, err = maskedPrefix(target, args[1])
			args = args[2:]
		} else {
			prefix, err = ParsePrefix(target)
		}
		if err != nil {
			im.skip(d, "not an address, address/bits or address and mask (host names are not supported)")
			return
		}
	}
	deny := false
	var limits, always, left []string
	for _, flag := range args {
		switch flag {
		case "ignore", "noserve":
			deny = true
		case "limited":
			im.limited = true
			limits = append(limits, flag)
		case "kod":
			im.kod = true
			limits = append(limits, flag)
		case "nomodify", "noquery", "nopeer", "noepeer", "notrap", "nomrulist", "lowpriotrap", "version":
			// ntptool never answers mode 6 and 7 queries nor peers, and
			// answers every NTP version.
			always = append(always, flag)
		default:
			left = append(left, flag)
		}
	}
	effects := []string{"allowed: in server.allow if the default is ignore"}
	switch {
	case target != "default" && deny:
		im.deny = append(im.deny, aclEntry{prefix, d.line})
		effects[0] = "denied: in server.deny"
	case target != "default":
		im.allow = append(im.allow, aclEntry{prefix, d.line})
	default:
		// ntpd adds the flags of a repeated line to the entry's.
		if family != "-6" {
			im.defaultDeny[0] = im.defaultDeny[0] || deny
		}
		if family != "-4" {
			im.defaultDeny[1] = im.defaultDeny[1] || deny
		}
		effects[0] = "clients are served by default"
		if deny {
			effects[0] = "clients are served only where a restrict line allows them"
		}
	}
	if len(limits) > 0 {
		effects = append(effects, quoteList(limits, "and")+": see [server.ratelimit]")
	}
	if len(always) > 0 {
		effects = append(effects, quoteList(always, "and")+": ntptool always behaves so")
	}
	im.comment("server", d, "%s", strings.Join(effects, "; "))
	im.leftOut(d, left, true)
}

// maskedPrefix parses ntpd's "ADDRESS mask MASK".
func maskedPrefix(addr, mask string) (netip.Prefix, error) {
	a, err1 := netip.ParseAddr(addr)
	m, err2 := netip.ParseAddr(mask)
	if err1 != nil || err2 != nil || a.Is4() != m.Is4() || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("bad address or mask")
	}
	ones, bits := net.IPMask(m.AsSlice()).Size()
	if bits == 0 {
		return netip.Prefix{}, fmt.Errorf("mask %s is not contiguous", mask)
	}
	return a.Prefix(ones)
}

// tinker imports ntpd's "tinker panic N" and "tinker step N".
func (im *importer) tinker(d directive) {
	s := &im.Config.Step
	var left []string
	for _, o := range options(d.args) {
		var v Duration
		switch {
		case !o.setSeconds(&v):
			left = append(left, o.String())
		case o.name == "panic":
			s.Panic = v
			im.keep("step.panic")
		case o.name == "step" && v.Duration == 0:
			s.SlewOnly = true
			im.comment("step", d, "ntpd never steps the clock")
		case o.name == "step":
			s.Threshold, s.Limit, im.tinkerStep = v, -1, true
			im.keep("step.threshold", "step.limit")
			im.comment("step", d, "ntpd steps offsets over the threshold at any time, hence limit = -1")
		default:
			left = append(left, o.String())
		}
	}
	im.leftOut(d, left, len(left) < len(options(d.args)))
}

// tos imports ntpd's "tos orphan N".
func (im *importer) tos(d directive) {
	var left []string
	for _, o := range options(d.args) {
		if o.name != "orphan" || !o.setInt(&im.Config.Server.LocalStratum, 1, maxStratum) {
			left = append(left, o.String())
			continue
		}
		im.comment("server", d, "orphan mode became a local stratum: with no source, ntptool serves its own clock at stratum %d (there is no election among orphan peers)", im.Config.Server.LocalStratum)
	}
	im.leftOut(d, left, len(left) < len(options(d.args)))
}

// discard imports ntpd's "discard average N": the mean interval (log2 s)
// allowed between a client's requests.
func (im *importer) discard(d directive) {
	var left []string
	for _, o := range options(d.args) {
		if o.name != "average" || !o.setLog2Seconds(&im.Config.Server.RateLimit.Interval) {
			left = append(left, o.String())
			continue
		}
		im.keep("server.ratelimit.interval")
	}
	im.leftOut(d, left, len(left) < len(options(d.args)))
}

// finish decides what needs the whole file: serving, access control, rate
// limiting and the step policy.
func (im *importer) finish() {
	s := &im.Config.Server
	daemon := im.Flavour.daemon()
	var allow []string
	var serving string // why serving is on or off
	switch {
	case im.Flavour == NTP:
		s.Enabled = true
		serving = "ntpd answers every client its restrict lines let in, so serving is on; on a machine that should only be a client, set enabled = false."
		if im.defaultDeny[0] || im.defaultDeny[1] {
			for _, a := range im.allow {
				if im.defaultDeny[0] && a.prefix.Addr().Is4() || im.defaultDeny[1] && a.prefix.Addr().Is6() {
					allow = append(allow, a.prefix.String())
				}
			}
			if !im.defaultDeny[0] {
				allow = append(allow, "0.0.0.0/0")
			}
			if !im.defaultDeny[1] {
				allow = append(allow, "::/0")
			}
			if len(allow) == 0 {
				s.Enabled = false
				serving = "restrict default ignore, with no exception: ntpd serves nobody, so serving is off."
			}
		}
	case im.noServe != 0:
		serving = fmt.Sprintf("line %d: port 0: chronyd serves nobody, so serving is off.", im.noServe)
	case im.allowAll || len(im.allow) > 0:
		s.Enabled = true
		serving = fmt.Sprintf("line %d: chronyd serves the clients its allow directives let in, so serving is on.", im.allowLine)
		if !im.allowAll {
			for _, a := range im.allow {
				allow = append(allow, a.prefix.String())
			}
		}
	default:
		serving = "chrony.conf has no allow directive: chronyd serves nobody, so serving is off."
	}
	// The decision goes before the comments about single directives.
	im.comments["server"] = append(wrap(serving, 76), im.comments["server"]...)
	im.keep("server.enabled")
	s.Allow = allow
	for _, d := range im.deny {
		s.Deny = append(s.Deny, d.prefix.String())
		for _, a := range im.allow {
			if d.prefix.Bits() < a.prefix.Bits() && d.prefix.Contains(a.prefix.Addr()) {
				im.explain("server", "line %d: %s lies in %s, denied on line %d: %s lets the more specific rule win, but in ntptool deny wins, so these clients are denied.", a.line, a.prefix, d.prefix, d.line, daemon)
			}
		}
	}

	if s.Enabled && !im.limited && !im.rateLimit {
		im.explain("server.ratelimit", "%s does not rate-limit clients here; ntptool's rate limit stays on (enabled = false turns it off).", daemon)
	}
	if im.limited {
		s.RateLimit.KoD = im.kod
		im.keep("server.ratelimit.enabled", "server.ratelimit.kod")
	}

	st := &im.Config.Step
	if st.Panic.Duration != 0 && st.Panic.Duration <= st.Threshold.Duration {
		im.explain("step", "The step threshold %v is not below the panic threshold %v, so the panic check is off (panic = 0).", st.Threshold, st.Panic)
		st.Panic = Duration{}
		im.keep("step.panic")
	}
	switch {
	case im.Flavour == Chrony && st.Panic.Duration != 0:
		im.explain("step", "chronyd has no panic threshold; ntptool refuses to correct an offset over panic = %q (0 disables the check).", st.Panic)
	case im.Flavour == NTP && !im.tinkerStep && !st.SlewOnly:
		im.explain("step", `ntpd steps offsets over 128ms at any time; ntptool keeps its default, stepping only in the first clock updates. For ntpd's behaviour set threshold = "128ms" and limit = -1.`)
	}
}

// wrap splits text into lines of at most width bytes, at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		line = strings.TrimPrefix(line+" "+w, " ")
	}
	return append(lines, line)
}
