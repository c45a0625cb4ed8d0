package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ntptool/ntptool/audit"
)

// writeJournal writes a journal with a step, two slews and a dry-run
// slew, rotated once after the step: audit.jsonl.1 holds the header and
// the step.
func writeJournal(t *testing.T) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, "audit.jsonl")
	j, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	step := audit.Entry{Time: t0, Kind: audit.KindStep, Old: t0.Format(time.RFC3339Nano), New: t0.Add(2 * time.Second).Format(time.RFC3339Nano),
		DeltaSeconds: 2, Reason: "initial offset", Sources: []string{"127.0.0.1:11123"}, Applied: true}
	if err := j.Append(step); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	for i, e := range []audit.Entry{
		{Time: t0.Add(64 * time.Second), Kind: audit.KindSlew, Old: 0.0, New: 0.000125, Unit: "s", Reason: "update", Applied: true},
		{Time: t0.Add(24 * time.Hour), Kind: audit.KindSlew, Old: 0.000125, New: -0.00002, Unit: "s", Reason: "update", Applied: true},
		{Time: t0.Add(48 * time.Hour), Kind: audit.KindSlew, Old: 0.0, New: 0.00001, Unit: "s", Reason: "update", Applied: false},
	} {
		if err := j.Append(e); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	return dir, path
}

func TestAuditCommand(t *testing.T) {
	dir, path := writeJournal(t)
	cfg := writeFile(t, "ntptool.toml", "[audit]\njournal = \""+path+"\"\n")
	for _, tt := range []struct {
		name     string
		args     []string
		wantCode int
		stdout   []string // substrings, in order
		lines    int      // stdout lines, if not 0
	}{
		{"print from config", []string{"audit", "--config", cfg}, 0, []string{
			"# " + path + ".1:1: journal header: created",
			"#1 2026-11-25T10:00:00.000000Z step            +2.000000 s (2026-11-25T10:00:00.000000Z → 2026-11-25T10:00:02.000000Z) applied; reason: initial offset; sources: 127.0.0.1:11123",
			"# " + path + ":1: journal header: rotated, continues after seq 1",
			"#2 2026-11-25T10:01:04.000000Z slew            0 s → 0.000125 s applied",
			"#4 2026-11-27T10:00:00.000000Z slew            0 s → 0.00001 s not applied (no clock control)",
		}, 6},
		{"since", []string{"audit", "--since", "2026-11-26", path, path + ".1"}, 0, []string{"#3 ", "#4 "}, 4},
		{"json", []string{"audit", "--json", "--since", "2026-11-25T10:00:30Z", "--config", cfg}, 0, []string{`{"seq":2,`, `{"seq":3,`, `{"seq":4,`}, 3},
		{"verify", []string{"audit", "--verify", "--config", cfg}, 0, []string{
			"OK: 4 entries (seq 1..4) in 2 file(s), chain from the journal's creation",
			"reaches the head recorded in " + path + ".head (seq 4)"}, 2},
		{"verify the new file alone", []string{"audit", "--verify", path}, 0, []string{"OK: 3 entries (seq 2..4) in 1 file(s), chain from a continuation header"}, 2},
		{"bad since", []string{"audit", "--since", "yesterday", path}, exitUsage, nil, 0},
		{"missing file", []string{"audit", filepath.Join(dir, "nope")}, exitFailure, nil, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit code %d, want %d; stderr %s", code, tt.wantCode, stderr)
			}
			rest := stdout
			for _, s := range tt.stdout {
				i := strings.Index(rest, s)
				if i < 0 {
					t.Fatalf("stdout lacks %q (in order):\n%s", s, stdout)
				}
				rest = rest[i+len(s):]
			}
			if n := strings.Count(stdout, "\n"); tt.lines != 0 && n != tt.lines {
				t.Errorf("%d lines, want %d:\n%s", n, tt.lines, stdout)
			}
		})
	}
}

func TestAuditVerifyFails(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(lines []string) []string
		want   string
	}{
		{"edited", func(l []string) []string {
			l[1] = strings.Replace(l[1], `"new":0.000125`, `"new":0.5`, 1)
			return l
		}, "audit.jsonl:2: changed after it was written"},
		{"deleted", func(l []string) []string { return append(l[:2:2], l[3:]...) }, "audit.jsonl:3: 1 entries missing before this one (seq 3..3): deleted"},
		{"truncated", func(l []string) []string { return l[:3] }, "audit.jsonl:3: the journal ends here at seq 3, but its head records seq 4"},
		{"torn", func(l []string) []string { l[3] = l[3][:10]; return l }, "audit.jsonl:4: torn last line"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, path := writeJournal(t)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.SplitAfter(strings.TrimSuffix(string(data), "\n"), "\n")
			lines[len(lines)-1] += "\n"
			if err := os.WriteFile(path, []byte(strings.Join(tt.change(lines), "")), 0o640); err != nil {
				t.Fatal(err)
			}
			code, _, stderr := runCmd(t, "audit", "--verify", path, path+".1")
			if code != exitFailure || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr, tt.want)
			}
		})
	}
}
