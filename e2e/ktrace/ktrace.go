// Package ktrace counts, from inside the e2e guest, the kernel clock calls
// and the UDP sends of each process, without strace and without the
// cooperation of the program under test: kprobe events on the kernel
// functions every clock call passes through (do_adjtimex for adjtimex(2) and
// clock_adjtime(2) on CLOCK_REALTIME, with the modes word; do_settimeofday64
// for clock_settime(2) and settimeofday(2); udp_sendmsg for every UDP
// datagram, which counts the polls of an NTP client), read back from the
// tracefs "trace" file with CLOCK_MONOTONIC timestamps.
//
// See the kernel's Documentation/trace/kprobetrace.rst for the probe syntax.
package ktrace

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Dir is where the guest mounts tracefs.
const Dir = "/sys/kernel/tracing"

// Event names of the probes, in the "e2e" group.
const (
	EvAdjtimex = "adjtimex"
	EvSettime  = "settime"
	EvUDPSend  = "udpsend"
)

// Probes are the kprobe_events lines. do_adjtimex's argument is the kernel
// copy of struct __kernel_timex (include/uapi/linux/timex.h): modes is the
// u32 at 0, freq the s64 at 16, time.tv_sec and time.tv_usec (nanoseconds
// with ADJ_NANO) the s64s at 72 and 80: ADJ_SETOFFSET's step.
var Probes = []string{
	"p:e2e/" + EvAdjtimex + " do_adjtimex modes=+0(%di):x32 freq=+16(%di):s64 sec=+72(%di):s64 usec=+80(%di):s64",
	"p:e2e/" + EvSettime + " do_settimeofday64",
	"p:e2e/" + EvUDPSend + " udp_sendmsg",
}

// adjtimex mode bits (include/uapi/linux/timex.h).
const (
	AdjOffset    = 0x0001
	AdjFrequency = 0x0002
	AdjSetOffset = 0x0100
	AdjNano      = 0x2000
	AdjTick      = 0x4000
)

// Event is one line of the trace.
type Event struct {
	Comm  string
	PID   int
	T     float64 // seconds, trace clock (CLOCK_MONOTONIC with Start)
	Name  string
	Modes uint32 // adjtimex events only
	// StepNS is ADJ_SETOFFSET's step (adjtimex events with that mode).
	StepNS int64
}

// IsStep reports whether the event moved the clock: a clock_settime, or an
// ADJ_SETOFFSET by a non-zero amount (chronyd probes the mode with a zero
// step at start).
func (e Event) IsStep() bool {
	switch e.Name {
	case EvSettime:
		return true
	case EvAdjtimex:
		return e.Modes&AdjSetOffset != 0 && e.StepNS != 0
	}
	return false
}

// Start installs the probes and starts tracing with CLOCK_MONOTONIC
// timestamps and a buffer of bufKB per CPU. tracefs must be mounted at dir.
func Start(dir string, bufKB int) error {
	write := func(name, v string) error {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o644); err != nil {
			return fmt.Errorf("ktrace: write %s: %w", name, err)
		}
		return nil
	}
	if err := write("tracing_on", "0"); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, "kprobe_events"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("ktrace: %w", err)
	}
	for _, p := range Probes {
		if _, err := f.WriteString(p + "\n"); err != nil {
			f.Close()
			return fmt.Errorf("ktrace: add probe %q: %w", p, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("ktrace: %w", err)
	}
	for _, kv := range [][2]string{{"trace_clock", "mono"}, {"buffer_size_kb", strconv.Itoa(bufKB)}, {"trace", ""}, {"events/e2e/enable", "1"}, {"tracing_on", "1"}} {
		if err := write(kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}

// Read parses the trace collected so far.
func Read(dir string) ([]Event, int, error) {
	f, err := os.Open(filepath.Join(dir, "trace"))
	if err != nil {
		return nil, 0, fmt.Errorf("ktrace: %w", err)
	}
	defer f.Close()
	return Parse(f)
}

// chronyd-345     [000] d....   123.456789: adjtimex: (do_adjtimex+0x0/0x2a0) modes=0x2001
var lineRE = regexp.MustCompile(`^\s*(.*)-(\d+)\s+\[\d+\]\s+(?:\S+\s+)?(\d+\.\d+): (\w+): (.*)$`)

var lostRE = regexp.MustCompile(`\[LOST (\d+) EVENTS\]`)

// Parse reads a tracefs "trace" file: the events, and how many the kernel
// reports lost (buffer overrun). Comment lines and lines it does not know
// are skipped.
func Parse(r io.Reader) (events []Event, lost int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		if m := lostRE.FindStringSubmatch(line); m != nil {
			// A count that does not parse is still a loss: count it once.
			n, err := strconv.Atoi(m[1])
			if err != nil || n <= 0 || n > 1<<30 {
				n = 1
			}
			lost = min(lost+n, 1<<40)
			continue
		}
		m := lineRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		pid, err1 := strconv.Atoi(m[2])
		t, err2 := strconv.ParseFloat(m[3], 64)
		if err1 != nil || err2 != nil {
			continue
		}
		ev := Event{Comm: strings.TrimSpace(m[1]), PID: pid, T: t, Name: m[4]}
		if ev.Name == EvAdjtimex {
			modes, ok := field(m[5], "modes")
			if !ok {
				continue
			}
			ev.Modes = uint32(modes)
			sec, _ := signedField(m[5], "sec")
			sub, _ := signedField(m[5], "usec")
			if ev.Modes&AdjNano == 0 {
				sub *= 1000
			}
			ev.StepNS = saturatingStep(sec, sub)
		}
		events = append(events, ev)
	}
	if err := sc.Err(); err != nil {
		return events, lost, fmt.Errorf("ktrace: read trace: %w", err)
	}
	return events, lost, nil
}

// field finds "name=0x..." in a probe's argument list.
func field(args, name string) (uint64, bool) {
	for _, f := range strings.Fields(args) {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k != name {
			continue
		}
		n, err := strconv.ParseUint(v, 0, 32)
		return n, err == nil
	}
	return 0, false
}

func signedField(args, name string) (int64, bool) {
	for _, f := range strings.Fields(args) {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k != name {
			continue
		}
		n, err := strconv.ParseInt(v, 0, 64)
		return n, err == nil
	}
	return 0, false
}

// saturatingStep is sec s + sub ns, kept within ±100 years so that wild
// (or fuzzed) values cannot overflow.
func saturatingStep(sec, sub int64) int64 {
	const lim = 100 * 365 * 86400
	sec = max(min(sec, lim), -lim)
	sub = max(min(sub, 1e12), -1e12)
	return sec*1e9 + sub
}

// Counts are one process's calls in a time span.
type Counts struct {
	// AdjtimexWrites are adjtimex/clock_adjtime calls with modes != 0
	// (each changes the kernel clock state).
	AdjtimexWrites int `json:"adjtimex_writes"`
	// AdjtimexReads are calls with modes 0.
	AdjtimexReads int `json:"adjtimex_reads"`
	// Steps are clock_settime/settimeofday calls and non-zero
	// ADJ_SETOFFSETs.
	Steps int `json:"steps"`
	// FrequencySets are calls with ADJ_FREQUENCY or ADJ_TICK.
	FrequencySets int `json:"frequency_sets"`
	// UDPSends are datagrams sent (an NTP client's requests).
	UDPSends int `json:"udp_sends"`
}

// Count counts the events of processes named comm with from <= T < to.
func Count(events []Event, comm string, from, to float64) Counts {
	var c Counts
	for _, e := range events {
		if e.Comm != comm || e.T < from || e.T >= to {
			continue
		}
		switch e.Name {
		case EvAdjtimex:
			if e.Modes == 0 {
				c.AdjtimexReads++
				continue
			}
			c.AdjtimexWrites++
			if e.IsStep() {
				c.Steps++
			}
			if e.Modes&(AdjFrequency|AdjTick) != 0 {
				c.FrequencySets++
			}
		case EvSettime:
			c.Steps++
		case EvUDPSend:
			c.UDPSends++
		}
	}
	return c
}
