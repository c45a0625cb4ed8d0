package config

import (
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/google/go-cmp/cmp"
)

func TestDurationDecode(t *testing.T) {
	for _, tt := range []struct {
		toml    string
		want    time.Duration
		wantErr string
	}{
		{toml: `"1s"`, want: time.Second},
		{toml: `"500ms"`, want: 500 * time.Millisecond},
		{toml: `"1m30s"`, want: 90 * time.Second},
		{toml: `"-2h"`, want: -2 * time.Hour},
		{toml: `"0"`, want: 0},
		{toml: `90`, want: 90 * time.Second},
		{toml: `0`, want: 0},
		{toml: `0.5`, want: 500 * time.Millisecond},
		{toml: `1e-9`, want: time.Nanosecond},
		{toml: `1.5e3`, want: 1500 * time.Second},
		{toml: `-1`, want: -time.Second},
		{toml: `9223372036`, want: 9223372036 * time.Second},
		{toml: `"1"`, wantErr: `invalid duration "1": want a number and a unit, like "1s" or "500ms"`},
		{toml: `"1 s"`, wantErr: `invalid duration "1 s": want a number and a unit, like "1s" or "500ms"`},
		{toml: `""`, wantErr: `invalid duration "": want a number and a unit, like "1s" or "500ms"`},
		{toml: `9223372037`, wantErr: "9223372037 seconds is out of range"},
		{toml: `1e10`, wantErr: "1e+10 seconds is out of range"},
		{toml: `nan`, wantErr: "NaN seconds is out of range"},
		{toml: `inf`, wantErr: "+Inf seconds is out of range"},
		{toml: `true`, wantErr: `want a duration like "1s" or a number of seconds, not a boolean`},
		{toml: `[1]`, wantErr: `want a duration like "1s" or a number of seconds, not an array`},
		{toml: `1979-05-27`, wantErr: `want a duration like "1s" or a number of seconds, not a date-time`},
		{toml: `{s = 1}`, wantErr: `want a duration like "1s" or a number of seconds, not a table`},
	} {
		t.Run(tt.toml, func(t *testing.T) {
			var v struct{ D Duration }
			_, err := toml.Decode("D = "+tt.toml, &v)
			var got string
			if pe, ok := err.(toml.ParseError); ok {
				got = pe.Message
			} else if err != nil {
				t.Fatalf("got %T %v, want a toml.ParseError", err, err)
			}
			if got != tt.wantErr {
				t.Fatalf("error %q, want %q", got, tt.wantErr)
			}
			if err == nil && v.D.Duration != tt.want {
				t.Errorf("got %v, want %v", v.D.Duration, tt.want)
			}
		})
	}
}

func TestDurationMarshalText(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{time.Second, "1s"},
		{90 * time.Second, "90s"},
		{1000 * time.Second, "1000s"},
		{2 * time.Minute, "2m"},
		{3 * time.Hour, "3h"},
		{-time.Hour, "-1h"},
		{1500 * time.Millisecond, "1.5s"},
		{500 * time.Millisecond, "500ms"},
		{time.Nanosecond, "1ns"},
	} {
		t.Run(tt.want, func(t *testing.T) {
			text, err := Duration{tt.d}.MarshalText()
			if err != nil || string(text) != tt.want {
				t.Fatalf("got %q, %v, want %q", text, err, tt.want)
			}
			var back Duration
			if err := back.UnmarshalText(text); err != nil || back.Duration != tt.d {
				t.Errorf("UnmarshalText(%q) = %v, %v, want %v", text, back.Duration, err, tt.d)
			}
		})
	}
}

func TestDurationEncodeWithToml(t *testing.T) {
	// Other packages may encode a Config with the toml package itself.
	got, err := toml.Marshal(struct{ Step Step }{Default().Step})
	if err != nil {
		t.Fatal(err)
	}
	want := "[Step]\n  threshold = \"1s\"\n  limit = 3\n  panic = \"1000s\"\n  slew_only = false\n"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}
