package ntpwire

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestTimestampRoundTrip(t *testing.T) {
	era1 := time.Date(2036, 2, 7, 6, 28, 16, 0, time.UTC) // NTP era 1 starts
	tests := []struct {
		name  string
		t     time.Time
		pivot time.Time
		want  Timestamp // 0: do not check the encoding
	}{
		{"unix epoch", time.Unix(0, 0).UTC(), time.Unix(0, 0), Timestamp(uint64(unixToNTP) << 32)},
		{"2026", t2026, t2026, 0},
		{"half second", time.Unix(1, 500000000).UTC(), time.Unix(0, 0), Timestamp(uint64(unixToNTP+1)<<32 | 1<<31)},
		{"last second of era 0", era1.Add(-time.Second), era1, Timestamp(0xffffffff << 32)},
		{"era 1 start", era1, era1, 0}, // encodes to 0 seconds, fraction 0 → the "unknown" value
		{"era 1 plus 1s", era1.Add(time.Second), era1.Add(-time.Hour), Timestamp(1 << 32)},
		{"2040 read with a 2030 pivot", time.Date(2040, 1, 1, 0, 0, 0, 250000000, time.UTC), time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), 0},
		{"2100", time.Date(2100, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := FromTime(tc.t)
			if tc.want != 0 {
				if diff := cmp.Diff(tc.want, ts); diff != "" {
					t.Errorf("FromTime(%v) (-want +got):\n%s", tc.t, diff)
				}
			}
			if ts == 0 {
				return
			}
			got := ts.Time(tc.pivot)
			if d := got.Sub(tc.t); d < -time.Nanosecond || d > time.Nanosecond {
				t.Errorf("Time(pivot %v) = %v, want %v", tc.pivot, got, tc.t)
			}
		})
	}
}

func TestTimestampSubAcrossEra(t *testing.T) {
	era1 := time.Date(2036, 2, 7, 6, 28, 16, 0, time.UTC)
	tests := []struct {
		name string
		a, b time.Time
	}{
		{"forward across rollover", era1.Add(3 * time.Second), era1.Add(-2 * time.Second)},
		{"backward across rollover", era1.Add(-2 * time.Second), era1.Add(3 * time.Second)},
		{"sub-second", t2026.Add(1500 * time.Microsecond), t2026},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := FromTime(tc.a).Sub(FromTime(tc.b))
			want := tc.a.Sub(tc.b)
			if d := got - want; d < -time.Nanosecond || d > time.Nanosecond {
				t.Errorf("Sub = %v, want %v", got, want)
			}
			if back := FromTime(tc.b).Add(want); back != FromTime(tc.a) && back+1 != FromTime(tc.a) && back-1 != FromTime(tc.a) {
				t.Errorf("Add(%v) = %x, want %x", want, back, FromTime(tc.a))
			}
		})
	}
}

func TestShortFormat(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want uint32
	}{
		{0, 0},
		{-time.Second, 0},
		{time.Second, 1 << 16},
		{time.Second / 2, 1 << 15},
		{time.Nanosecond, 1}, // rounded up: a bound is never understated
		{100000 * time.Second, 0xffffffff},
	}
	for _, tc := range tests {
		t.Run(tc.d.String(), func(t *testing.T) {
			if diff := cmp.Diff(tc.want, ShortFromDuration(tc.d)); diff != "" {
				t.Errorf("shortFromDuration (-want +got):\n%s", diff)
			}
		})
	}
	if got := ShortToDuration(1 << 16); got != time.Second {
		t.Errorf("ShortToDuration(1<<16) = %v", got)
	}
}

// t2026 is a fixed instant for the tests.
var t2026 = time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)
