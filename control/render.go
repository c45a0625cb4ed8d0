package control

import (
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"
)

// RenderStatus writes a status as chronyc tracking lays it out: one
// "Label : value" line per field.
func RenderStatus(w io.Writer, st *Status) error {
	ref := "-"
	if st.ReferenceID != "" {
		ref = st.ReferenceID
		var who []string
		for _, s := range []string{st.ReferenceName, st.ReferenceAddress} {
			if s != "" && (len(who) == 0 || who[0] != s) {
				who = append(who, s)
			}
		}
		if len(who) > 0 {
			ref += " (" + strings.Join(who, ", ") + ")"
		}
	}
	refTime := "-"
	if !st.RefTime.IsZero() {
		refTime = st.RefTime.UTC().Format("Mon Jan 02 15:04:05.000 2006")
	}
	lastErr := st.LastError
	if lastErr == "" {
		lastErr = "-"
	}
	control := "yes"
	if !st.ClockControl {
		control = "no (--no-clock-control: computed, not applied)"
	}
	lines := [][2]string{
		{"Reference ID", ref},
		{"Stratum", fmt.Sprint(st.Stratum)},
		{"Ref time (UTC)", refTime},
		{"System time", fmt.Sprintf("%.9f seconds %s of NTP time", math.Abs(st.SystemTimeOffsetSeconds), aheadBehind(st.SystemTimeOffsetSeconds))},
		{"Last offset", fmt.Sprintf("%+.9f seconds", st.LastOffsetSeconds)},
		{"RMS offset", fmt.Sprintf("%.9f seconds", st.RMSOffsetSeconds)},
		{"Frequency", frequency(st.FrequencyPPM)},
		{"Residual freq", fmt.Sprintf("%+.3f ppm", st.ResidualFrequencyPPM)},
		{"Skew", fmt.Sprintf("%.3f ppm", st.SkewPPM)},
		{"Root delay", fmt.Sprintf("%.9f seconds", st.RootDelaySeconds)},
		{"Root dispersion", fmt.Sprintf("%.9f seconds", st.RootDispersionSeconds)},
		{"Update interval", fmt.Sprintf("%.1f seconds", st.UpdateIntervalSeconds)},
		{"Leap status", leapText(st.Leap)},
		{"Sync state", st.SyncState},
		{"Clock control", control},
		{"Last error", lastErr},
		{"Next poll", fmt.Sprintf("in %.1f seconds", st.NextPollSeconds)},
	}
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "%-15s : %s\n", l[0], l[1])
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// aheadBehind words an offset's sign as chronyc does.
func aheadBehind(offset float64) string {
	if offset < 0 {
		return "slow"
	}
	return "fast"
}

// frequency words the correction as the clock's own error: a correction
// that speeds the clock up means the clock alone is slow.
func frequency(ppm float64) string {
	switch {
	case ppm > 0:
		return fmt.Sprintf("%.3f ppm slow (corrected by %+.3f ppm)", ppm, ppm)
	case ppm < 0:
		return fmt.Sprintf("%.3f ppm fast (corrected by %+.3f ppm)", -ppm, ppm)
	}
	return "0.000 ppm"
}

func leapText(l string) string {
	switch l {
	case LeapNormal:
		return "Normal"
	case LeapInsert:
		return "Insert second"
	case LeapDelete:
		return "Delete second"
	case LeapUnsynchronised:
		return "Not synchronised"
	}
	return l
}

// sourcesLegend explains the columns (sources -v).
const sourcesLegend = `  .-- Tally: '*' selected (the reference)   '+' combined with it   '-' not combined
 /           'x' falseticker (outside the majority)   '?' unreachable   '~' too variable
|  St: the source's stratum.  Poll: log2 of the poll interval in seconds (6 = 64 s).
|  Reach: the last 8 polls as an octal register (377: all answered, 0: none).
|  LastRx: age of the last good sample.  Offset: this clock minus the source's
|  (+: this clock is ahead), adjusted for the corrections made since, then
|  [as measured] and +/- its estimated error.  Delay: round trip.  Jitter: the
|  RMS scatter of the source's recent samples around its filter's prediction.
|
`

// RenderSources writes the sources as chronyc sources / ntpq -p do: one
// line each after a header; verbose writes the legend first.
func RenderSources(w io.Writer, srcs []Source, verbose bool) error {
	nameW, addrW := len("Name"), len("Address")
	for _, s := range srcs {
		nameW = max(nameW, min(utf8.RuneCountInString(s.Name), 40))
		addrW = max(addrW, len(s.Address))
	}
	var b strings.Builder
	if verbose {
		b.WriteString(sourcesLegend)
	}
	fmt.Fprintf(&b, "S %-*s %-*s %3s %4s %5s %7s  %-33s %9s %9s\n", nameW, "Name", addrW, "Address", "St", "Poll", "Reach", "LastRx", "Offset[measured] +/- error", "Delay", "Jitter")
	b.WriteString(strings.Repeat("=", 2+nameW+1+addrW+1+3+1+4+1+5+1+7+2+33+1+9+1+9) + "\n")
	for _, s := range srcs {
		tally := s.Tally
		if tally == "" {
			tally = Tally(s.State)
		}
		name := s.Name
		if utf8.RuneCountInString(name) > 40 {
			name = string([]rune(name)[:39]) + "…"
		}
		addr := s.Address
		if addr == "" {
			addr = "-"
		}
		lastRx, sample, delay, jitter := "-", "-", "-", "-"
		if x := s.LastSample; x != nil {
			lastRx = age(x.AgeSeconds)
			sample = fmt.Sprintf("%s[%s] +/- %s", seconds(x.OffsetSeconds, true), seconds(x.MeasuredOffsetSeconds, true), seconds(x.ErrorSeconds, false))
			delay, jitter = seconds(x.DelaySeconds, false), seconds(x.JitterSeconds, false)
		}
		fmt.Fprintf(&b, "%s %-*s %-*s %3d %4d %5o %7s  %-33s %9s %9s\n", tally, nameW, name, addrW, addr, s.Stratum, s.PollLog2, s.Reach&0xff, lastRx, sample, delay, jitter)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// seconds formats a time in seconds with a unit that keeps 1–4 digits
// before the point: "+12.3us", "250.0ms", "1.234s".
func seconds(s float64, signed bool) string {
	sign := ""
	if signed {
		sign = "+"
	}
	a := math.Abs(s)
	switch {
	case math.IsNaN(s) || math.IsInf(s, 0):
		return "?"
	case a < 1e-6:
		return fmt.Sprintf("%"+sign+".0fns", s*1e9)
	case a < 1e-3:
		return fmt.Sprintf("%"+sign+".1fus", s*1e6)
	case a < 1:
		return fmt.Sprintf("%"+sign+".1fms", s*1e3)
	}
	return fmt.Sprintf("%"+sign+".3fs", s)
}

// age formats how long ago: "23s", "17m", "5h", "3d".
func age(s float64) string {
	switch {
	case math.IsNaN(s) || s < 0:
		return "-"
	case s < 600:
		return fmt.Sprintf("%.0fs", s)
	case s < 36000:
		return fmt.Sprintf("%.0fm", s/60)
	case s < 4*86400:
		return fmt.Sprintf("%.0fh", s/3600)
	}
	return fmt.Sprintf("%.0fd", s/86400)
}
