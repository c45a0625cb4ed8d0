package driftfile

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Drift
		wantErr bool
	}{
		{name: "ntpd", in: "12.345\n", want: Drift{CorrectionPPM: 12.345}},
		{name: "ntpd negative", in: "-3.5\n", want: Drift{CorrectionPPM: -3.5}},
		{name: "ntpd with spaces", in: "  7.000  \n", want: Drift{CorrectionPPM: 7}},
		{name: "chrony: error with the opposite sign, and skew", in: "-100.063 0.014\n", want: Drift{CorrectionPPM: 100.063, SkewPPM: 0.014}},
		{name: "chrony zero", in: "0.000000 0.000000\n", want: Drift{}},
		{name: "limit", in: "50000\n", want: Drift{CorrectionPPM: 50000}},
		{name: "beyond ntpd's 500 ppm", in: "-700.5\n", want: Drift{CorrectionPPM: -700.5}},
		{name: "empty", in: "", wantErr: true},
		{name: "blank line", in: "\n", wantErr: true},
		{name: "truncated (no newline)", in: "12.3", wantErr: true},
		{name: "garbage", in: "abc\n", wantErr: true},
		{name: "trailing garbage", in: "12.3x\n", wantErr: true},
		{name: "three numbers", in: "1 2 3\n", wantErr: true},
		{name: "two lines", in: "1\n2\n", wantErr: true},
		{name: "NaN", in: "NaN\n", wantErr: true},
		{name: "Inf", in: "+Inf\n", wantErr: true},
		{name: "out of range", in: "50000.1\n", wantErr: true},
		{name: "chrony out of range", in: "-60000 0.1\n", wantErr: true},
		{name: "chrony negative skew", in: "1 -0.1\n", wantErr: true},
		{name: "chrony absurd skew", in: "0 1e16\n", wantErr: true},
		{name: "NUL bytes", in: "\x00\x00\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse([]byte(tc.in))
			if tc.wantErr {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Parse(%q) = %+v, %v; want ErrCorrupt", tc.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Parse(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drift")
	for _, ppm := range []float64{0, 12.345678, -499.999999, 50000, -0.000001} {
		if err := Write(path, Drift{CorrectionPPM: ppm}); err != nil {
			t.Fatal(err)
		}
		got, err := Read(path)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got.CorrectionPPM-ppm) > 1e-6 {
			t.Errorf("round trip of %v ppm gave %v", ppm, got.CorrectionPPM)
		}
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after writes, want only the drift file", len(entries))
	}
}

func TestWriteRefusesBadValuesAndKeepsOldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drift")
	if err := Write(path, Drift{CorrectionPPM: 4.5}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []float64{math.NaN(), math.Inf(1), 50001, -1e9} {
		if err := Write(path, Drift{CorrectionPPM: bad}); err == nil {
			t.Errorf("Write(%v) succeeded, want an error", bad)
		}
	}
	if got, err := Read(path); err != nil || got.CorrectionPPM != 4.5 {
		t.Errorf("old drift file damaged: %+v, %v", got, err)
	}
}

func TestReadMissing(t *testing.T) {
	_, err := Read(filepath.Join(t.TempDir(), "nope"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Read(missing) = %v, want os.ErrNotExist", err)
	}
}

func TestWriteIntoMissingDirectoryFails(t *testing.T) {
	if err := Write(filepath.Join(t.TempDir(), "no", "drift"), Drift{}); err == nil {
		t.Error("Write into a missing directory succeeded")
	}
}

// FuzzParse: never panics; whatever parses is in range and survives a
// write/read round trip (to the written precision).
func FuzzParse(f *testing.F) {
	for _, s := range []string{"12.345\n", "-100.063 0.014\n", "", "1e3\n", "0x1p-2\n", " 5 \n", "1 2 3\n"} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data)
		if err != nil {
			return
		}
		if math.Abs(d.CorrectionPPM) > MaxPPM || d.SkewPPM < 0 || d.SkewPPM > MaxPPM {
			t.Fatalf("Parse(%q) accepted out-of-range %+v", data, d)
		}
		path := filepath.Join(dir, "drift")
		if err := Write(path, d); err != nil {
			t.Fatalf("Write(%+v) of a parsed value: %v", d, err)
		}
		back, err := Read(path)
		if err != nil || math.Abs(back.CorrectionPPM-d.CorrectionPPM) > 1e-6 {
			t.Fatalf("round trip of %+v: %+v, %v", d, back, err)
		}
	})
}

// TestWriteRemovesStaleTempFiles: a crash mid-save leaves a temporary
// file; the next Write removes those older than a minute (by their
// modification time against its own fresh one), keeps younger ones (a
// concurrent Write's) and leaves other files alone.
func TestWriteRemovesStaleTempFiles(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		age      time.Duration
		wantGone bool
	}{
		{"an hour-old leftover", ".drift.tmp-123", time.Hour, true},
		{"a two-minute-old leftover", ".drift.tmp-456", 2 * time.Minute, true},
		{"a concurrent write's, seconds old", ".drift.tmp-789", 5 * time.Second, false},
		{"another file's temporary file", ".other.tmp-1", time.Hour, false},
		{"not a temporary file", "drift.tmp-1", time.Hour, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "drift")
			left := filepath.Join(dir, tc.file)
			if err := os.WriteFile(left, []byte("1.0"), 0o600); err != nil {
				t.Fatal(err)
			}
			old := time.Now().Add(-tc.age)
			if err := os.Chtimes(left, old, old); err != nil {
				t.Fatal(err)
			}
			if err := Write(path, Drift{CorrectionPPM: 2}); err != nil {
				t.Fatal(err)
			}
			_, err := os.Stat(left)
			if gone := errors.Is(err, os.ErrNotExist); gone != tc.wantGone {
				t.Errorf("%s: removed %v, want %v", tc.file, gone, tc.wantGone)
			}
			if d, err := Read(path); err != nil || d.CorrectionPPM != 2 {
				t.Errorf("Read: %v, %v", d, err)
			}
		})
	}
}

func TestGlobEscape(t *testing.T) {
	for _, name := range []string{"drift", "a*b", "x?[y]", `back\slash`} {
		if ok, err := filepath.Match(globEscape(name), name); !ok || err != nil {
			t.Errorf("globEscape(%q) = %q does not match itself: %v", name, globEscape(name), err)
		}
	}
}
