package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Kind is what an entry records.
type Kind string

// The kinds of clock change.
const (
	// KindStep: the clock was set (old and new: the clock's reading before
	// and after, RFC 3339; Delta: the step, seconds).
	KindStep Kind = "step"
	// KindSlew: a slew was started (old: the phase still to slew from the
	// previous one, new: the new phase, seconds).
	KindSlew Kind = "slew"
	// KindFrequency: the frequency correction changed (ppm).
	KindFrequency Kind = "frequency"
	// KindStatus: the kernel's synchronisation status changed ("synchronised"
	// or "unsynchronised", the maximum error in Reason).
	KindStatus Kind = "status"
	// KindLeap: a leap second was announced or withdrawn ("none", "insert",
	// "delete").
	KindLeap Kind = "leap"
	// KindExternal: another process changed the clock (old: the time this
	// daemon expected, new: the time it found; Delta, seconds).
	KindExternal Kind = "external-change"
)

// kinds lists every Kind, for validation.
var kinds = []Kind{KindStep, KindSlew, KindFrequency, KindStatus, KindLeap, KindExternal}

// Valid reports whether k is one of the kinds above.
func (k Kind) Valid() bool {
	for _, x := range kinds {
		if k == x {
			return true
		}
	}
	return false
}

// HookRun is one hook run around a change.
type HookRun struct {
	// Name names the hook ("dhclient", or the program path of an exec hook).
	Name string `json:"name"`
	// Phase is "pre_step", "post_step" or "external_step".
	Phase string `json:"phase,omitempty"`
	// Result is "ok", "failed", "timeout" or "skipped".
	Result string `json:"result"`
	// Error is the failure, if any.
	Error string `json:"error,omitempty"`
	// DurationSeconds is how long it ran.
	DurationSeconds float64 `json:"duration_seconds"`
}

// Entry is one clock change. Old and New are JSON values whose meaning
// depends on Kind (see the Kind constants); Unit names their unit when they
// are numbers ("s", "ppm").
type Entry struct {
	// Seq is the entry's sequence number, one above the previous entry's;
	// Append sets it.
	Seq uint64 `json:"seq"`
	// Time is when the change was made (the clock's reading before it).
	Time time.Time `json:"time"`
	// Kind is what changed.
	Kind Kind `json:"kind"`
	// Old and New are the values before and after.
	Old any `json:"old"`
	New any `json:"new"`
	// Unit is the unit of numeric Old and New ("s", "ppm"), or empty.
	Unit string `json:"unit,omitempty"`
	// DeltaSeconds is the size of a step or an external change (new − old).
	DeltaSeconds float64 `json:"delta_seconds,omitempty"`
	// Frequency is the frequency correction before and after, when the
	// same kernel call changed it (a slew entry: one clock update sets
	// both); nil otherwise.
	Frequency *FrequencyChange `json:"frequency_ppm,omitempty"`
	// Reason says why ("initial offset 1.2 s above step.threshold 1 s").
	Reason string `json:"reason"`
	// Sources are the sources behind the change ("name (address)").
	Sources []string `json:"sources,omitempty"`
	// Hooks are the hooks run for it, with their results.
	Hooks []HookRun `json:"hooks,omitempty"`
	// Applied is false when the change was not made (no clock control: a
	// dry run), or when the kernel refused it (Error says why).
	Applied bool `json:"applied"`
	// Error is the kernel's refusal, if any.
	Error string `json:"error,omitempty"`
	// Prev is the SHA-256 (hex) of the line before; Append sets it.
	Prev string `json:"prev"`
}

// FrequencyChange is a frequency correction before and after (ppm;
// positive speeds the clock up).
type FrequencyChange struct {
	Old float64 `json:"old"`
	New float64 `json:"new"`
}

// Header is the first line of every journal file, and of every
// continuation inside one. A journal's very first header carries the salt;
// a continuation header carries the link to the last line before it.
type Header struct {
	// Journal is always "ntptool-audit": it tells headers from entries.
	Journal string `json:"journal"`
	// Version is the format version, 1.
	Version int `json:"version"`
	// Created is when the header was written, if the writer knew the time.
	Created time.Time `json:"created,omitzero"`
	// Salt is 32 random bytes (hex), in the journal's first header only.
	Salt string `json:"salt,omitempty"`
	// PrevSeq is the Seq of the last entry before this header.
	PrevSeq uint64 `json:"prev_seq,omitempty"`
	// Prev is the SHA-256 (hex) of the line this header continues from;
	// empty in the journal's first header.
	Prev string `json:"prev,omitempty"`
	// Torn is the SHA-256 (hex) of a torn line just before this header (a
	// write cut short by a crash), which Prev skips.
	Torn string `json:"torn,omitempty"`
	// Reason says why the header was written: "created", "rotated",
	// "reopened", "continued after a torn line", ...
	Reason string `json:"reason"`
}

const (
	journalName = "ntptool-audit"
	version     = 1
	// MaxLineBytes bounds a line; longer ones are rejected, so a corrupt
	// file cannot make a reader buffer without limit.
	MaxLineBytes = 1 << 20
)

// Line is one parsed line: exactly one of Header and Entry is set.
type Line struct {
	Header *Header
	Entry  *Entry
}

// Errors of ParseLine.
var (
	ErrNotJournal = errors.New("not an ntptool audit journal line")
	ErrTooLong    = fmt.Errorf("line longer than %d bytes", MaxLineBytes)
)

// ParseLine parses one journal line, without its "\n".
func ParseLine(raw []byte) (Line, error) {
	if len(raw) > MaxLineBytes {
		return Line{}, ErrTooLong
	}
	var probe struct {
		Journal *string `json:"journal"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return Line{}, fmt.Errorf("%w: %v", ErrNotJournal, err)
	}
	if probe.Journal != nil {
		var h Header
		if err := json.Unmarshal(raw, &h); err != nil {
			return Line{}, fmt.Errorf("%w: header: %v", ErrNotJournal, err)
		}
		if h.Journal != journalName {
			return Line{}, fmt.Errorf("%w: header names journal %q", ErrNotJournal, h.Journal)
		}
		if h.Version != version {
			return Line{}, fmt.Errorf("%w: header version %d (this ntptool reads %d)", ErrNotJournal, h.Version, version)
		}
		for _, f := range []struct{ name, hex string }{{"salt", h.Salt}, {"prev", h.Prev}, {"torn", h.Torn}} {
			if f.hex != "" && !isHash(f.hex) {
				return Line{}, fmt.Errorf("%w: header %s is not 64 hex digits", ErrNotJournal, f.name)
			}
		}
		if h.Salt == "" && h.Prev == "" {
			return Line{}, fmt.Errorf("%w: header has neither a salt nor a link", ErrNotJournal)
		}
		return Line{Header: &h}, nil
	}
	var e Entry
	if err := json.Unmarshal(raw, &e); err != nil {
		return Line{}, fmt.Errorf("%w: entry: %v", ErrNotJournal, err)
	}
	switch {
	case e.Seq == 0:
		return Line{}, fmt.Errorf("%w: entry without a seq", ErrNotJournal)
	case !isHash(e.Prev):
		return Line{}, fmt.Errorf("%w: entry prev is not 64 hex digits", ErrNotJournal)
	case !e.Kind.Valid():
		return Line{}, fmt.Errorf("%w: unknown kind %q", ErrNotJournal, e.Kind)
	case e.Time.IsZero():
		return Line{}, fmt.Errorf("%w: entry without a time", ErrNotJournal)
	}
	return Line{Entry: &e}, nil
}

// isHash reports whether s is a lower-case hex SHA-256.
func isHash(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Hash is the SHA-256 (hex) of a raw line without its "\n": what the next
// line's "prev" holds.
func Hash(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}
