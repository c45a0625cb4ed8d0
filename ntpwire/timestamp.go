// Package ntpwire holds the NTP wire formats shared by the client and the
// server: the 64-bit timestamp with era-safe conversion (RFC 5905 section
// 6) and the 32-bit short format of root delay and dispersion.
package ntpwire

import (
	"math"
	"time"
)

// Timestamp is an NTP timestamp (RFC 5905 §6): seconds since 1900-01-01 UTC
// modulo 2^32 in the high 32 bits and a binary fraction of a second in the
// low 32 bits. It does not say which 136-year era it belongs to; Time
// resolves that against a pivot, so conversions stay right past 2036-02-07.
type Timestamp uint64

// unixToNTP is the number of seconds from the NTP epoch (1900) to the Unix
// epoch (1970).
const unixToNTP = 2208988800

// FromUnix converts Unix seconds and nanoseconds (as the kernel
// reports them in SO_TIMESTAMPNS) to an NTP timestamp. The era number is
// dropped, as on the wire (RFC 5905 §6).
func FromUnix(sec int64, nsec int64) Timestamp {
	s := uint64(sec+unixToNTP) & 0xffffffff
	// Round to the nearest 2^-32 s, at most (2^32·(1e9−1) + 5e8)/1e9 <
	// 2^32: it never carries into the seconds.
	f := (uint64(nsec)<<32 + 500000000) / 1000000000
	return Timestamp(s<<32 | f)
}

// FromTime converts t to an NTP timestamp. The zero time.Time
// converts to the zero Timestamp, which NTP uses for "unknown".
func FromTime(t time.Time) Timestamp {
	if t.IsZero() {
		return 0
	}
	return FromUnix(t.Unix(), int64(t.Nanosecond()))
}

// Time returns the instant ts denotes in the era that puts it closest to
// pivot (within ±68 years of it), so a timestamp of 2036 after the era
// rollover is read as 2036, not 1900. The zero Timestamp returns the zero
// time.Time.
func (ts Timestamp) Time(pivot time.Time) time.Time {
	if ts == 0 {
		return time.Time{}
	}
	pivotNTP := pivot.Unix() + unixToNTP
	// Offset of ts's seconds from the pivot's, as a signed 32-bit
	// difference: this picks the nearest era (RFC 5905 §6, "era").
	d := int64(int32(uint32(ts>>32) - uint32(uint64(pivotNTP))))
	sec := pivotNTP + d - unixToNTP
	nsec := (int64(ts&0xffffffff)*1000000000 + 1<<31) >> 32
	return time.Unix(sec, nsec).UTC()
}

// Sub returns ts − u as a duration, assuming the two are less than 68 years
// apart (the era-safe difference of RFC 5905 §6).
func (ts Timestamp) Sub(u Timestamp) time.Duration {
	d := int64(ts - u) // wraps modulo 2^64: right across an era boundary
	// d is in units of 2^-32 s; convert without overflowing for |d| < 2^63.
	sec := d >> 32
	frac := d & 0xffffffff
	return time.Duration(sec)*time.Second + time.Duration((frac*1000000000)>>32)
}

// Add returns ts + d.
func (ts Timestamp) Add(d time.Duration) Timestamp {
	return ts + Timestamp(durationToFixed32(d))
}

// durationToFixed32 converts d to a signed 32.32 fixed-point number of
// seconds.
func durationToFixed32(d time.Duration) int64 {
	sec := int64(d / time.Second)
	ns := int64(d % time.Second)
	return sec<<32 + (ns<<32)/1000000000
}

// ShortFromDuration encodes a non-negative duration as an NTP short format
// (RFC 5905 §6: 16.16 fixed-point seconds), rounding up so that a bound such
// as root dispersion is never understated, and saturating at the maximum.
func ShortFromDuration(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	if d >= 65536*time.Second {
		return math.MaxUint32
	}
	// d < 2^16 s = 6.6e13 ns; d<<16 < 4.3e18 fits in int64.
	return uint32((uint64(d)<<16 + 999999999) / 1000000000)
}

// ShortToDuration decodes an NTP short format (16.16 seconds).
func ShortToDuration(s uint32) time.Duration {
	return time.Duration((uint64(s) * 1000000000) >> 16)
}
