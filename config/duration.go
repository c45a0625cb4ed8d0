package config

import (
	"fmt"
	"math"
	"time"
)

// maxSeconds is the largest number of seconds a time.Duration holds.
const maxSeconds = math.MaxInt64 / int64(time.Second)

// UnmarshalTOML decodes a TOML string in time.ParseDuration syntax ("1s",
// "500ms", "1m30s") or a TOML number of seconds (1, 0.5).
func (d *Duration) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		return d.UnmarshalText([]byte(v))
	case int64:
		if v > maxSeconds || v < -maxSeconds {
			return fmt.Errorf("%d seconds is out of range", v)
		}
		d.Duration = time.Duration(v) * time.Second
		return nil
	case float64:
		dur, err := seconds(v)
		if err != nil {
			return err
		}
		*d = dur
		return nil
	default:
		return fmt.Errorf(`want a duration like "1s" or a number of seconds, not %s`, tomlType(v))
	}
}

// UnmarshalText decodes a duration in time.ParseDuration syntax.
func (d *Duration) UnmarshalText(text []byte) error {
	dur, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf(`invalid duration %q: want a number and a unit, like "1s" or "500ms"`, text)
	}
	d.Duration = dur
	return nil
}

// MarshalText encodes the duration as String does, which UnmarshalText
// reads back.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.String()), nil
}

// String formats the duration in whole hours, minutes or seconds if it is
// one ("1h", "90s", "1000s"), else as time.Duration.String does ("1.5s",
// "500ms").
func (d Duration) String() string {
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if d.Duration != 0 && d.Duration%u.unit == 0 {
			return fmt.Sprintf("%d%s", d.Duration/u.unit, u.name)
		}
	}
	return d.Duration.String()
}

// seconds converts a number of seconds into a Duration, rounded to the
// nanosecond.
func seconds(s float64) (Duration, error) {
	if math.IsNaN(s) || math.Abs(s) > float64(maxSeconds) {
		return Duration{}, fmt.Errorf("%g seconds is out of range", s)
	}
	return Duration{time.Duration(math.Round(s * float64(time.Second)))}, nil
}

// tomlType names the TOML type of a decoded value, for error messages.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		return "a date-time"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	default:
		return fmt.Sprintf("%T", v)
	}
}
