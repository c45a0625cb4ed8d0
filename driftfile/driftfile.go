// Package driftfile reads and writes the drift file: the clock's learned
// frequency correction, kept across restarts so that the daemon starts
// close to the right frequency.
//
// ntptool writes ntpd's format: one number, the frequency correction in
// ppm that the daemon applies to the clock (positive speeds the clock up).
// It also reads chrony's format: two numbers, the clock's frequency error
// in ppm (the opposite sign of the correction) and its error bound. Writes
// are atomic: a temporary file in the same directory, fsync, rename, fsync
// of the directory, so a crash leaves the old file or the new one, never a
// partial one; temporary files a crash left are removed by the next
// write.
package driftfile

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// MaxPPM is the largest correction accepted: what the daemon can apply
// (ADJ_FREQUENCY's ±500 ppm plus the tick, up to ±5 %; ntpd stops at
// ±500 ppm, chronyd goes further).
const MaxPPM = 50000.0

// ErrCorrupt marks a drift file that exists but cannot be used; the error
// says why. Callers use errors.Is.
var ErrCorrupt = errors.New("corrupt drift file")

// Drift is the content of a drift file.
type Drift struct {
	// CorrectionPPM is the frequency correction applied to the clock, in
	// ppm; positive speeds the clock up (ntpd's convention).
	CorrectionPPM float64
	// SkewPPM is the error bound of the correction in ppm, when the file
	// carries one (chrony's format); 0 if unknown.
	SkewPPM float64
}

// Read reads and parses the drift file at path. A missing file gives an
// error matching os.ErrNotExist; a bad one an error matching ErrCorrupt.
func Read(path string) (Drift, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Drift{}, fmt.Errorf("drift file: %w", err)
	}
	d, err := Parse(data)
	if err != nil {
		return Drift{}, fmt.Errorf("drift file %s: %w", path, err)
	}
	return d, nil
}

// Parse parses a drift file's content: ntpd's one number (the correction)
// or chrony's two (the clock's error, opposite sign, and its error bound).
func Parse(data []byte) (Drift, error) {
	text := string(data)
	if !strings.HasSuffix(text, "\n") {
		// Both daemons end the line; a missing newline means a partial write.
		return Drift{}, fmt.Errorf("%w: no final newline (truncated?)", ErrCorrupt)
	}
	fields := strings.Fields(text)
	if len(fields) == 0 || len(fields) > 2 || strings.Count(text, "\n") != 1 {
		return Drift{}, fmt.Errorf("%w: want one line with 1 number (ntpd) or 2 (chrony), got %q", ErrCorrupt, clip(text))
	}
	nums := make([]float64, len(fields))
	for i, f := range fields {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return Drift{}, fmt.Errorf("%w: %q is not a number", ErrCorrupt, clip(f))
		}
		nums[i] = v
	}
	d := Drift{CorrectionPPM: nums[0]}
	if len(nums) == 2 {
		d = Drift{CorrectionPPM: -nums[0], SkewPPM: nums[1]}
		if d.SkewPPM < 0 || d.SkewPPM > MaxPPM {
			return Drift{}, fmt.Errorf("%w: skew %g ppm outside [0, %g] ppm", ErrCorrupt, d.SkewPPM, MaxPPM)
		}
	}
	if math.Abs(d.CorrectionPPM) > MaxPPM {
		return Drift{}, fmt.Errorf("%w: correction %g ppm outside ±%g ppm", ErrCorrupt, d.CorrectionPPM, MaxPPM)
	}
	// Ensure -0 prints as 0.
	d.CorrectionPPM += 0
	return d, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Format returns d in ntpd's format: the correction in ppm on one line.
func Format(d Drift) []byte {
	return []byte(strconv.FormatFloat(d.CorrectionPPM, 'f', 6, 64) + "\n")
}

// Write stores d at path atomically in ntpd's format. It refuses values
// that Parse would reject, so it never writes a file it cannot read back.
func Write(path string, d Drift) error {
	if math.IsNaN(d.CorrectionPPM) || math.Abs(d.CorrectionPPM) > MaxPPM {
		return fmt.Errorf("drift file %s: refusing to write correction %g ppm (outside ±%g)", path, d.CorrectionPPM, MaxPPM)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("drift file: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if err := writeSync(tmp, Format(d)); err != nil {
		return fmt.Errorf("drift file %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("drift file %s: %w", path, err)
	}
	fresh, err := os.Stat(tmp.Name())
	if err != nil {
		return fmt.Errorf("drift file %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("drift file: %w", err)
	}
	removeStale(dir, filepath.Base(path), fresh.ModTime())
	// The rename is durable only once the directory is synced.
	if df, err := os.Open(dir); err == nil {
		err = df.Sync()
		df.Close()
		if err != nil {
			return fmt.Errorf("drift file %s: sync directory: %w", path, err)
		}
	}
	return nil
}

// staleAge is how much older than a fresh temporary file a leftover one
// must be to be removed: a Write running beside this one (the daemon's
// hourly save and its save on exit may overlap) is younger.
const staleAge = time.Minute

// removeStale removes the temporary files that a crash between
// CreateTemp and the rename left beside the drift file (kill -9 during a
// save, power loss): without it they pile up, one per such crash. Age is
// told by the file system's clock, against the fresh temporary file's
// modification time, not by reading the time here. Errors are ignored:
// the drift file itself is written.
func removeStale(dir, base string, fresh time.Time) {
	matches, _ := filepath.Glob(filepath.Join(dir, "."+globEscape(base)+".tmp-*"))
	for _, m := range matches {
		if st, err := os.Lstat(m); err == nil && st.Mode().IsRegular() && st.ModTime().Before(fresh.Add(-staleAge)) {
			_ = os.Remove(m)
		}
	}
}

// globEscape quotes the pattern characters of filepath.Match in s.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func writeSync(f *os.File, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
