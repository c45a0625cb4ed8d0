package audit

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// fakeNow is a clock that advances one second per call.
func fakeNow() func() time.Time {
	n := 0
	return func() time.Time { n++; return t0.Add(time.Duration(n) * time.Second) }
}

// sample returns entries of every kind: a step (with a hook), slews, a
// frequency change, a status and a leap change, a dry run and an external
// step.
func sample() []Entry {
	return []Entry{
		{Time: t0, Kind: KindStep, Old: t0.Format(time.RFC3339Nano), New: t0.Add(1500 * time.Millisecond).Format(time.RFC3339Nano),
			DeltaSeconds: 1.5, Reason: "initial offset 1.5 s above step.threshold 1 s", Sources: []string{"a.example (192.0.2.1:123)"},
			Hooks: []HookRun{{Name: "dhclient", Phase: "post_step", Result: "ok", DurationSeconds: 0.12}}, Applied: true},
		{Time: t0.Add(64 * time.Second), Kind: KindSlew, Old: 0.0, New: -0.000250, Unit: "s", Reason: "update", Sources: []string{"a.example (192.0.2.1:123)"}, Applied: true},
		{Time: t0.Add(64 * time.Second), Kind: KindFrequency, Old: 12.5, New: 12.61, Unit: "ppm", Reason: "update", Applied: true},
		{Time: t0.Add(128 * time.Second), Kind: KindStatus, Old: "unsynchronised", New: "synchronised", Reason: "maxerror 1.2 ms", Applied: true},
		{Time: t0.Add(192 * time.Second), Kind: KindSlew, Old: -0.000010, New: 0.000004, Unit: "s", Reason: "update", Applied: false},
		{Time: t0.Add(256 * time.Second), Kind: KindLeap, Old: "none", New: "insert", Reason: "2 of 3 sources announce it", Applied: true},
		{Time: t0.Add(300 * time.Second), Kind: KindExternal, Old: "2026-11-25T10:05:00Z", New: "2026-11-25T10:05:30Z", DeltaSeconds: 30, Reason: "clock set by another process", Applied: true},
	}
}

// newJournal opens a journal in a temporary directory with a fixed salt.
func newJournal(t *testing.T) (*Journal, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	j, err := Open(path, Options{Now: fakeNow(), Rand: bytes.NewReader(bytes.Repeat([]byte{7}, 32))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j, path
}

func appendAll(t *testing.T, j *Journal, entries []Entry) {
	t.Helper()
	for _, e := range entries {
		if err := j.Append(e); err != nil {
			t.Fatalf("Append(%s): %v", e.Kind, err)
		}
	}
}

// verifyAnchored verifies files with the head file beside the newest.
func verifyAnchored(t *testing.T, head string, paths ...string) (Report, error) {
	t.Helper()
	h, err := ReadHead(head)
	if err != nil {
		t.Fatal(err)
	}
	return VerifyFiles(paths, VerifyOptions{Head: &h})
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(string(data), "\n")
}

func TestAppendVerifyAndRead(t *testing.T) {
	j, path := newJournal(t)
	appendAll(t, j, sample())
	rep, err := verifyAnchored(t, path+".head", path)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	want := Report{Files: []string{path}, Entries: 7, Headers: 1, FirstSeq: 1, LastSeq: 7, Genesis: true, Anchored: true}
	if diff := cmp.Diff(want, rep); diff != "" {
		t.Errorf("report (-want +got)\n%s", diff)
	}
	if h := j.Head(); h.Seq != 7 {
		t.Errorf("Head().Seq = %d, want 7", h.Seq)
	}

	// Read back: the entries as written, with Seq and Prev set.
	var got []Entry
	err = Scan([]string{path}, func(r Record) error {
		if r.Err != nil {
			return r.Err
		}
		if r.Parsed.Entry != nil {
			got = append(got, *r.Parsed.Entry)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantE := sample()
	for i := range wantE {
		wantE[i].Seq = uint64(i + 1)
	}
	if diff := cmp.Diff(wantE, got, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Prev" }, cmp.Ignore())); diff != "" {
		t.Errorf("entries (-want +got)\n%s", diff)
	}
	if f := Format(&got[0]); !strings.Contains(f, "#1 2026-11-25T10:00:00.000000Z step") || !strings.Contains(f, "+1.500000 s") ||
		!strings.Contains(f, "hooks: dhclient ok 0.120 s") || !strings.Contains(f, " applied") {
		t.Errorf("Format(step) = %q", f)
	}
	if f := Format(&got[4]); !strings.Contains(f, "not applied (no clock control)") {
		t.Errorf("Format(dry run) = %q", f)
	}
}

func TestAppendRejects(t *testing.T) {
	j, _ := newJournal(t)
	for _, tc := range []struct {
		name string
		e    Entry
	}{
		{"no time", Entry{Kind: KindStep}},
		{"bad kind", Entry{Time: t0, Kind: "jump"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := j.Append(tc.e); err == nil {
				t.Error("Append succeeded")
			}
		})
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Append(sample()[1]); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
}

// TestTamper edits, deletes, moves and truncates lines and checks that
// Verify names the right line. The journal: line 1 header, lines 2..8
// entries seq 1..7.
func TestTamper(t *testing.T) {
	for _, tc := range []struct {
		name     string
		change   func(lines []string) []string
		anchored bool
		line     int
		msg      string
	}{
		{"edit an entry", func(l []string) []string {
			l[3] = strings.Replace(l[3], `"new":12.61`, `"new":12.71`, 1)
			return l
		}, false, 4, "changed after it was written"},
		{"edit the header's salt", func(l []string) []string {
			l[0] = strings.Replace(l[0], "0707", "0808", 1)
			return l
		}, false, 1, "changed after it was written"},
		{"edit into bad JSON", func(l []string) []string {
			l[4] = l[4][5:]
			return l
		}, false, 5, "not a journal line"},
		{"delete an entry", func(l []string) []string {
			return append(l[:4:4], l[5:]...)
		}, false, 5, "1 entries missing before this one (seq 4..4)"},
		{"delete the header", func(l []string) []string { return l[1:] }, false, 1, "does not start with a journal header"},
		{"duplicate an entry", func(l []string) []string {
			return append(l[:5:5], l[4:]...)
		}, false, 6, "seq 4 repeats"},
		{"swap two entries", func(l []string) []string {
			l[3], l[4] = l[4], l[3]
			return l
		}, false, 4, "entries missing"},
		{"truncate inside the last line", func(l []string) []string {
			l[7] = l[7][:20]
			return l
		}, false, 8, "torn last line"},
		{"truncate inside a line", func(l []string) []string {
			l[5] = l[5][:30]
			return l[:6]
		}, false, 6, "torn last line"},
		{"truncate at a line boundary", func(l []string) []string { return l[:6] }, true, 6,
			"ends here at seq 5, but its head records seq 7: the last 2 entries were removed"},
		{"edit the last line", func(l []string) []string {
			l[7] = strings.Replace(l[7], `"delta_seconds":30`, `"delta_seconds":3`, 1)
			return l
		}, true, 8, "no line matches the recorded head"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, path := newJournal(t)
			appendAll(t, j, sample())
			lines := readLines(t, path)
			if len(lines) != 9 || lines[8] != "" {
				t.Fatalf("journal has %d lines, want 8", len(lines)-1)
			}
			if _, err := VerifyFiles([]string{path}, VerifyOptions{}); err != nil {
				t.Fatalf("before the change: %v", err)
			}
			if err := os.WriteFile(path, []byte(strings.Join(tc.change(lines[:8]), "")), 0o640); err != nil {
				t.Fatal(err)
			}
			var err error
			if tc.anchored {
				_, err = verifyAnchored(t, path+".head", path)
			} else {
				_, err = VerifyFiles([]string{path}, VerifyOptions{})
			}
			var ce *ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("verify = %v, want a *ChainError", err)
			}
			if ce.File != path || ce.Line != tc.line || !strings.Contains(ce.Msg, tc.msg) {
				t.Errorf("verify = %v\nwant %s:%d: …%s…", err, path, tc.line, tc.msg)
			}
		})
	}
}

// TestTruncateWithoutHead documents the limit: a cut at a line boundary
// is invisible without the recorded head.
func TestTruncateWithoutHead(t *testing.T) {
	j, path := newJournal(t)
	appendAll(t, j, sample())
	lines := readLines(t, path)
	if err := os.WriteFile(path, []byte(strings.Join(lines[:6], "")), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyFiles([]string{path}, VerifyOptions{}); err != nil {
		t.Errorf("verify without a head = %v, want nil", err)
	}
}

func TestRotation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rotate func(t *testing.T, j *Journal, path string) []string // returns the old files
	}{
		{"rename, noticed by Append", func(t *testing.T, j *Journal, path string) []string {
			mustRename(t, path, path+".1")
			return []string{path + ".1"}
		}},
		{"rename and create (logrotate create), then Reopen", func(t *testing.T, j *Journal, path string) []string {
			mustRename(t, path, path+".1")
			if err := os.WriteFile(path, nil, 0o640); err != nil {
				t.Fatal(err)
			}
			if err := j.Reopen(); err != nil {
				t.Fatal(err)
			}
			return []string{path + ".1"}
		}},
		{"two rotations", func(t *testing.T, j *Journal, path string) []string {
			mustRename(t, path, path+".2")
			if err := j.Append(sample()[2]); err != nil {
				t.Fatal(err)
			}
			mustRename(t, path, path+".1")
			return []string{path + ".2", path + ".1"}
		}},
		{"removed", func(t *testing.T, j *Journal, path string) []string {
			mustRename(t, path, path+".old")
			return []string{path + ".old"}
		}},
		{"copytruncate", func(t *testing.T, j *Journal, path string) []string {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path+".1", data, 0o640); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
			return []string{path + ".1"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, path := newJournal(t)
			entries := sample()
			appendAll(t, j, entries[:3])
			old := tc.rotate(t, j, path)
			appendAll(t, j, entries[3:])

			// The new file alone verifies from its continuation header.
			rep, err := verifyAnchored(t, path+".head", path)
			if err != nil {
				t.Fatalf("new file alone: %v", err)
			}
			if rep.Genesis || rep.LastSeq != uint64(len(entries)+len(old)-1) {
				t.Errorf("new file alone: %+v", rep)
			}
			// All files, given newest first, verify as one chain.
			all := append([]string{path}, old...)
			rep, err = verifyAnchored(t, path+".head", all...)
			if err != nil {
				t.Fatalf("all files: %v", err)
			}
			if !rep.Genesis || rep.FirstSeq != 1 || rep.Entries != len(entries)+len(old)-1 || rep.Files[len(rep.Files)-1] != path {
				t.Errorf("all files: %+v", rep)
			}
			// Cutting the old file's last entry breaks the link.
			oldest := old[len(old)-1]
			lines := readLines(t, oldest)
			if err := os.WriteFile(oldest, []byte(strings.Join(lines[:len(lines)-2], "")), 0o640); err != nil {
				t.Fatal(err)
			}
			_, err = VerifyFiles(all, VerifyOptions{})
			var ce *ChainError
			if !errors.As(err, &ce) || ce.File == oldest || ce.Line != 1 || !strings.Contains(ce.Msg, "entries were removed") {
				t.Errorf("after cutting %s: %v, want a broken link at line 1 of the next file", oldest, err)
			}
		})
	}
}

func mustRename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

// TestReopenUnchanged: Reopen with nothing rotated writes nothing.
func TestReopenUnchanged(t *testing.T) {
	j, path := newJournal(t)
	appendAll(t, j, sample()[:2])
	before := readLines(t, path)
	if err := j.Reopen(); err != nil {
		t.Fatal(err)
	}
	appendAll(t, j, sample()[2:3])
	if after := readLines(t, path); len(after) != len(before)+1 {
		t.Errorf("%d lines after Reopen and one Append, want %d", len(after)-1, len(before))
	}
}

// TestRestart: a closed journal is continued by the next Open, in the same
// file or, after a rotation while stopped, in a new one linked through the
// head file.
func TestRestart(t *testing.T) {
	j, path := newJournal(t)
	entries := sample()
	appendAll(t, j, entries[:2])
	j.Close()

	j2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, j2, entries[2:4])
	j2.Close()
	mustRename(t, path, path+".1")

	j3, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, j3, entries[4:])
	j3.Close()

	rep, err := verifyAnchored(t, path+".head", path, path+".1")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != len(entries) || rep.Headers != 2 || !rep.Genesis {
		t.Errorf("report %+v, want %d entries and 2 headers", rep, len(entries))
	}
	if n := len(readLines(t, path+".1")) - 1; n != 5 {
		t.Errorf("first file has %d lines, want 5 (header, 4 entries: a restart adds no header)", n)
	}
}

// TestTornLine: a crash during a write leaves a torn last line, which
// Verify reports; the next Open continues after it, and Verify then
// accepts it as torn, not tampered.
func TestTornLine(t *testing.T) {
	j, path := newJournal(t)
	appendAll(t, j, sample()[:3])
	j.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"seq":4,"time":"2026-11-25T10:`)
	f.Close()

	_, err = VerifyFiles([]string{path}, VerifyOptions{})
	var ce *ChainError
	if !errors.As(err, &ce) || ce.Line != 5 || !strings.Contains(ce.Msg, "torn last line") {
		t.Fatalf("verify = %v, want line 5 reported as torn", err)
	}

	j2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, j2, sample()[3:5])
	j2.Close()
	rep, err := verifyAnchored(t, path+".head", path)
	if err != nil {
		t.Fatalf("verify after recovery: %v", err)
	}
	if diff := cmp.Diff([]Location{{path, 5}}, rep.Torn); diff != "" || rep.LastSeq != 5 {
		t.Errorf("torn (-want +got)\n%s\nreport %+v", diff, rep)
	}

	// A second bad line is not a crash: the journal refuses to guess.
	if err := os.WriteFile(path, []byte(strings.Join(readLines(t, path), "")+"junk\nmore junk\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "cannot continue") {
		t.Errorf("Open after two junk lines = %v, want cannot continue", err)
	}
}

// TestWholeLineWithoutNewline: a write cut just before its "\n" leaves a
// complete line that is still disowned by the recovery header.
func TestWholeLineWithoutNewline(t *testing.T) {
	j, path := newJournal(t)
	appendAll(t, j, sample()[:4])
	j.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, bytes.TrimSuffix(data, []byte("\n")), 0o640); err != nil {
		t.Fatal(err)
	}
	j2, err := Open(path, Options{HeadFile: "-"})
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, j2, sample()[3:5])
	j2.Close()
	rep, err := VerifyFiles([]string{path}, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Line 5 (seq 4, cut before its newline) is disowned; seq 4 is written
	// again after the recovery header.
	if rep.LastSeq != 5 || rep.Entries != 5 || len(rep.Torn) != 1 || rep.Torn[0].Line != 5 {
		t.Errorf("report %+v", rep)
	}
}

// TestHeadAheadOfFile: lines removed while the daemon was stopped stay
// evident after the next Open.
func TestHeadAheadOfFile(t *testing.T) {
	j, path := newJournal(t)
	appendAll(t, j, sample()[:4])
	j.Close()
	lines := readLines(t, path)
	if err := os.WriteFile(path, []byte(strings.Join(lines[:3], "")), 0o640); err != nil {
		t.Fatal(err)
	}
	j2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, j2, sample()[4:])
	j2.Close()
	_, err = VerifyFiles([]string{path}, VerifyOptions{})
	var ce *ChainError
	if !errors.As(err, &ce) || ce.Line != 4 || !strings.Contains(ce.Msg, "2 entries were removed") {
		t.Errorf("verify = %v, want line 4: 2 entries were removed", err)
	}
}

// TestForeignLine: a line appended by someone else while the journal is
// open is found by Verify; the journal's own chain goes on around it.
func TestForeignLine(t *testing.T) {
	j, path := newJournal(t)
	appendAll(t, j, sample()[:2])
	lines := readLines(t, path)
	forged := strings.Replace(lines[2], `"seq":2`, `"seq":3`, 1)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(forged)
	f.Close()
	appendAll(t, j, sample()[2:4])
	_, err = VerifyFiles([]string{path}, VerifyOptions{})
	var ce *ChainError
	if !errors.As(err, &ce) || ce.Line != 3 {
		t.Errorf("verify = %v, want the forged line's predecessor link broken at line 3", err)
	}
}

// TestWriteErrorsAreReturned: a journal that cannot write says so.
func TestWriteErrorsAreReturned(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "missing", "audit.jsonl"), Options{}); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
	j, err := Open(filepath.Join(dir, "audit.jsonl"), Options{HeadFile: filepath.Join(dir, "nodir", "x.head")})
	if err == nil {
		j.Close()
		t.Error("Open with an unwritable head file succeeded")
	}
}

func TestGzipRotated(t *testing.T) {
	j, path := newJournal(t)
	appendAll(t, j, sample()[:3])
	mustRename(t, path, path+".1")
	appendAll(t, j, sample()[3:])
	gzipFile(t, path+".1")
	if _, err := verifyAnchored(t, path+".head", path, path+".1.gz"); err != nil {
		t.Fatal(err)
	}
}

// TestJustRotated: right after logrotate created an empty journal, the
// files verify (the empty one holds nothing yet), and the first Append
// continues the chain in it.
func TestJustRotated(t *testing.T) {
	j, path := newJournal(t)
	appendAll(t, j, sample()[:3])
	mustRename(t, path, path+".1")
	if err := os.WriteFile(path, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := verifyAnchored(t, path+".head", path, path+".1"); err != nil {
		t.Fatalf("just rotated: %v", err)
	}
	if _, err := VerifyFiles([]string{path}, VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "no journal lines") {
		t.Errorf("the empty file alone: %v, want no journal lines", err)
	}
	appendAll(t, j, sample()[3:])
	if _, err := verifyAnchored(t, path+".head", path, path+".1"); err != nil {
		t.Fatalf("after the next append: %v", err)
	}
}

// TestOneWriter: a second Journal on the same file is refused.
func TestOneWriter(t *testing.T) {
	_, path := newJournal(t)
	if j2, err := Open(path, Options{}); err == nil {
		j2.Close()
		t.Fatal("a second writer opened the journal")
	} else if !strings.Contains(err.Error(), "in use by another process") {
		t.Errorf("second Open: %v", err)
	}
}

// Chown gives the open file away (as root, to another user; otherwise to
// the caller's own ids, which any process may), and fails once closed.
func TestChown(t *testing.T) {
	j, path := newJournal(t)
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		uid, gid = 65534, 65534
	}
	if err := j.Chown(uid, gid); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("owner %d:%d, want %d:%d", st.Uid, st.Gid, uid, gid)
	}
	j.Close()
	if err := j.Chown(uid, gid); !errors.Is(err, ErrClosed) {
		t.Errorf("Chown after Close = %v, want ErrClosed", err)
	}
}
