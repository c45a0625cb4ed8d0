package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// tableDocs are the comments DefaultTOML writes above each table.
var tableDocs = map[string][]string{
	"step":             {"When an offset is stepped instead of slewed."},
	"clock":            {"How the local clock is adjusted."},
	"server":           {"Serving NTP (ntptool serve, or ntptool run with enabled = true)."},
	"server.ratelimit": {"Rate limit per client address."},
	"hooks":            {"Commands run around clock steps: argument vectors, no shell."},
	"control":          {"The local control socket of the status commands; \"\" disables it."},
	"metrics":          {"The Prometheus endpoint; \"\" disables it."},
	"audit":            {"The journal of every clock change (JSON lines); \"\" disables it."},
	"log":              {"Logging."},
	"run":              {"The daemon process: the user it switches to when started as root (\"\" keeps it)."},
}

// DefaultTOML returns the default configuration as a commented TOML file
// that lists every key, with an example source.
func DefaultTOML() string {
	var b strings.Builder
	b.WriteString(`# ntptool configuration: every key with its default value.
# See docs/config.md for what each key means.
#
# There are no default sources; add one [[source]] table per server or pool:
#
# [[source]]
# pool = "pool.ntp.org"    # or: server = "ntp.example.net"
# iburst = true
# port = 123
# minpoll = 6
# maxpoll = 10
# prefer = false
# maxsources = 4           # pools only
`)
	c := Default()
	e := encoder{b: &b, comments: tableDocs}
	e.table("", reflect.ValueOf(c), reflect.Value{})
	return b.String()
}

// encoder writes a Config as TOML.
type encoder struct {
	b *strings.Builder
	// comments are written under the header of a table, by key path ("" for
	// the top of the file, "source[1]" for a source); each line gets a "# ".
	comments map[string][]string
	// keep lists key paths that are written even when equal to the base.
	keep map[string]bool
}

// table writes the keys of struct v, then its tables; path is the table's
// key path ("" at the top). With base valid, only the keys whose value
// differs from base's (or that are in keep) are written, and a table with no
// key to write and no comment is left out.
func (e *encoder) table(path string, v, base reflect.Value) {
	var body strings.Builder
	for _, c := range e.comments[path] {
		body.WriteString(comment(c) + "\n")
	}
	for _, f := range tomlFields(v.Type()) {
		fv := v.Field(f.index)
		if tableType(f.typ) != nil || base.IsValid() && !e.keep[joinPath(path, f.name)] &&
			reflect.DeepEqual(fv.Interface(), base.Field(f.index).Interface()) {
			continue
		}
		fmt.Fprintf(&body, "%s = %s\n", f.name, tomlValue(fv.Interface()))
	}
	switch {
	case path == "":
		e.b.WriteString(body.String())
	case body.Len() > 0:
		header := "[" + path + "]"
		if i := strings.IndexByte(path, '['); i >= 0 {
			header = "[[" + path[:i] + "]]"
		}
		fmt.Fprintf(e.b, "\n%s\n%s", header, body.String())
	}

	for _, f := range tomlFields(v.Type()) {
		fv := v.Field(f.index)
		switch {
		case tableType(f.typ) == nil:
		case f.typ.Kind() == reflect.Slice:
			// The only array of tables is [[source]].
			for i := range fv.Len() {
				var elemBase reflect.Value
				if base.IsValid() {
					elemBase = reflect.ValueOf(DefaultSource())
				}
				e.table(fmt.Sprintf("%s[%d]", joinPath(path, f.name), i), fv.Index(i), elemBase)
			}
		default:
			var sub reflect.Value
			if base.IsValid() {
				sub = base.Field(f.index)
			}
			e.table(joinPath(path, f.name), fv, sub)
		}
	}
}

// tomlValue formats one of the value types of the schema.
func tomlValue(v any) string {
	switch v := v.(type) {
	case string:
		return quote(v)
	case bool:
		return strconv.FormatBool(v)
	case int:
		return strconv.Itoa(v)
	case float64:
		s := strconv.FormatFloat(v, 'f', -1, 64)
		if !strings.ContainsAny(s, ".eEnN") {
			s += ".0" // stay a TOML float
		}
		return s
	case Duration:
		return quote(v.String())
	case []string:
		q := make([]string, len(v))
		for i, s := range v {
			q[i] = quote(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	case [][]string:
		q := make([]string, len(v))
		for i, argv := range v {
			q[i] = tomlValue(argv)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	panic(fmt.Sprintf("config: no TOML encoding for %T", v))
}

// quote writes s as a TOML basic string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range strings.ToValidUTF8(s, string(utf8.RuneError)) {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// comment makes s a TOML comment line: TOML allows no control character but
// tab in a comment, and only UTF-8.
func comment(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return utf8.RuneError
		}
		return r
	}, strings.ToValidUTF8(s, string(utf8.RuneError)))
	return strings.TrimRight("# "+s, " \t")
}
