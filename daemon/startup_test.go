package daemon

import (
	"bytes"
	"errors"
	"log/slog"
	"math"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/config"
	"github.com/ntptool/ntptool/driftfile"
)

// startupKernel is a fake kernel clock for the daemon's start-up under
// clock control: it keeps the adjtimex state the daemon sets, records
// the calls, and reads the time from a fixed instant. It is handed to
// the daemon explicitly (RunOptions.Kernel), so nothing here can reach
// the host's clock.
type startupKernel struct {
	state unix.Timex
	calls []unix.Timex
	fail  error // returned by every call with modes
}

func (k *startupKernel) Adjtimex(tx *unix.Timex) (int, error) {
	k.calls = append(k.calls, *tx)
	if tx.Modes != 0 && k.fail != nil {
		return 0, k.fail
	}
	m := tx.Modes
	if m&unix.ADJ_TICK != 0 {
		if tx.Tick < 9000 || tx.Tick > 11000 {
			return 0, syscall.EINVAL
		}
		k.state.Tick = tx.Tick
	}
	if m&unix.ADJ_FREQUENCY != 0 {
		k.state.Freq = min(max(tx.Freq, -500<<16), 500<<16)
	}
	if m&unix.ADJ_STATUS != 0 {
		k.state.Status = tx.Status
	}
	if m&unix.ADJ_OFFSET != 0 {
		k.state.Offset = tx.Offset
	}
	if m&unix.ADJ_MAXERROR != 0 {
		k.state.Maxerror = tx.Maxerror
	}
	if m&unix.ADJ_ESTERROR != 0 {
		k.state.Esterror = tx.Esterror
	}
	modes := tx.Modes
	*tx = k.state
	tx.Modes = modes
	return unix.TIME_ERROR, nil
}

func (k *startupKernel) Now() (time.Time, time.Duration) {
	return time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC), time.Hour
}

type nopTransport struct{}

func (nopTransport) Send(int, []byte) (time.Time, time.Duration, error) {
	return time.Time{}, 0, nil
}

// TestHostStartupOffNominalTick runs the daemon's own start-up under
// clock control (host.openClock, then the engine's New with the drift
// file, as host.open does) over a fake kernel left by a daemon that died
// mid-slew: the tick off nominal is restored and never taken as a
// frequency, the drift file's frequency is kept (or, without one, the
// kernel's frequency field alone), and the log says what was found.
func TestHostStartupOffNominalTick(t *testing.T) {
	tests := []struct {
		name          string
		kernel        unix.Timex
		drift         *driftfile.Drift
		wantFreq      float64
		wantTick      int64
		wantFreqField int64
		wantLog       string
	}{
		{"tick +5 % and a drift file: nominal tick, the drift file's frequency",
			unix.Timex{Tick: 10500, Freq: 7 << 16, Status: unix.STA_UNSYNC}, &driftfile.Drift{CorrectionPPM: 7.25},
			7.25, 10000, int64(7.25 * 65536), "tick 10500 µs is off nominal"},
		{"tick -8.33 %, synchronised, ntpd's PLL on, and a drift file",
			unix.Timex{Tick: 9167, Freq: -30 << 16, Status: unix.STA_PLL}, &driftfile.Drift{CorrectionPPM: -2.5},
			-2.5, 10000, int64(-2.5 * 65536), "tick 9167 µs is off nominal"},
		{"tick -3 % and no drift file: the frequency field alone",
			unix.Timex{Tick: 9700, Freq: -20 << 16, Status: unix.STA_UNSYNC}, nil,
			-20, 10000, -20 << 16, "from the kernel's frequency field"},
		{"a coarse drift frequency goes back into the tick",
			unix.Timex{Tick: 10400, Freq: 3 << 16, Status: unix.STA_UNSYNC}, &driftfile.Drift{CorrectionPPM: 712.5},
			712.5, 10007, int64(12.5 * 65536), "from the drift file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := &startupKernel{state: tc.kernel}
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			cfg := config.Default()
			h := &host{opt: RunOptions{Kernel: k}, log: log, cfg: &cfg, control: true}
			if h.opt.Kernel == nil { // never the host's clock
				t.Fatal("no fake kernel")
			}
			if err := h.openClock(tc.drift); err != nil {
				t.Fatal(err)
			}
			if h.watched == nil || h.null != nil {
				t.Fatal("openClock did not take the (fake) kernel clock")
			}
			eng, err := New(&cfg, Options{Clock: h.clk, Transport: nopTransport{}, Drift: tc.drift, Logger: log, DeferSources: true})
			if err != nil {
				t.Fatal(err)
			}
			st := eng.Status()
			if st.FreqPPM != tc.wantFreq {
				t.Errorf("engine frequency %v ppm, want %v", st.FreqPPM, tc.wantFreq)
			}
			if eng.Drift().CorrectionPPM != tc.wantFreq {
				t.Errorf("Drift() %v ppm, want %v (what a save would write)", eng.Drift().CorrectionPPM, tc.wantFreq)
			}
			if k.state.Tick != tc.wantTick || k.state.Freq != tc.wantFreqField {
				t.Errorf("kernel tick %d, freq %d; want %d, %d", k.state.Tick, k.state.Freq, tc.wantTick, tc.wantFreqField)
			}
			if k.state.Status&(unix.STA_UNSYNC|unix.STA_PLL) != unix.STA_UNSYNC {
				t.Errorf("kernel status %#x, want STA_UNSYNC without STA_PLL", k.state.Status)
			}
			// No call may have set the tick and frequency together as one
			// number beyond what the plan wants.
			for _, c := range k.calls {
				if c.Modes&unix.ADJ_TICK != 0 && math.Abs(clock.RatePPM(c)-tc.wantFreq) > 1e-3 {
					t.Errorf("a call set %v ppm (tick %d, freq %d), want only %v", clock.RatePPM(c), c.Tick, c.Freq, tc.wantFreq)
				}
			}
			if !strings.Contains(logs.String(), tc.wantLog) || !strings.Contains(logs.String(), "kernel clock at start") {
				t.Errorf("log lacks %q:\n%s", tc.wantLog, &logs)
			}
		})
	}
	t.Run("EPERM while restoring: the permission error", func(t *testing.T) {
		k := &startupKernel{state: unix.Timex{Tick: 10500, Status: unix.STA_UNSYNC}, fail: syscall.EPERM}
		cfg := config.Default()
		h := &host{opt: RunOptions{Kernel: k}, log: slog.New(slog.DiscardHandler), cfg: &cfg, control: true}
		if err := h.openClock(nil); !errors.Is(err, clock.ErrPermission) {
			t.Errorf("openClock: %v, want ErrPermission", err)
		}
	})
}
