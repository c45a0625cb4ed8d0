package audit

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Format renders an entry as one line for people:
//
//	#3 2026-11-25T10:00:00.000000Z step +1.500000 s (2026-… → 2026-…) applied; reason: …; sources: …; hooks: dhclient ok 0.120 s
func Format(e *Entry) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#%d %s %-15s ", e.Seq, e.Time.UTC().Format("2006-01-02T15:04:05.000000Z"), e.Kind)
	change := formatValue(e.Old, e.Unit) + " → " + formatValue(e.New, e.Unit)
	if e.DeltaSeconds != 0 {
		change = fmt.Sprintf("%+.6f s (%s)", e.DeltaSeconds, change)
	}
	b.WriteString(change)
	if f := e.Frequency; f != nil {
		fmt.Fprintf(&b, ", frequency %+.3f → %+.3f ppm", f.Old, f.New)
	}
	switch {
	case e.Applied:
		b.WriteString(" applied")
	case e.Error != "":
		b.WriteString(" NOT APPLIED: " + e.Error)
	default:
		b.WriteString(" not applied (no clock control)")
	}
	if e.Reason != "" {
		b.WriteString("; reason: " + e.Reason)
	}
	if len(e.Sources) > 0 {
		b.WriteString("; sources: " + strings.Join(e.Sources, ", "))
	}
	if len(e.Hooks) > 0 {
		hooks := make([]string, len(e.Hooks))
		for i, h := range e.Hooks {
			hooks[i] = fmt.Sprintf("%s %s %.3f s", h.Name, h.Result, h.DurationSeconds)
			if h.Error != "" {
				hooks[i] += " (" + h.Error + ")"
			}
		}
		b.WriteString("; hooks: " + strings.Join(hooks, ", "))
	}
	return strings.Map(printable, b.String())
}

// printable replaces control characters, so a journal line cannot move the
// terminal's cursor or fake a second line.
func printable(r rune) rune {
	if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
		return '?'
	}
	return r
}

// formatValue renders an old or new value.
func formatValue(v any, unit string) string {
	switch v := v.(type) {
	case nil:
		return "-"
	case float64:
		s := strconv.FormatFloat(v, 'f', -1, 64)
		if unit != "" {
			s += " " + unit
		}
		return s
	case string:
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return t.UTC().Format("2006-01-02T15:04:05.000000Z")
		}
		return v
	default:
		return fmt.Sprint(v)
	}
}
