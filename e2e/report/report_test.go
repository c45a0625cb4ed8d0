package report

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func sample() *Report {
	r := New("smoke")
	r.Set("offset_seconds", -30.000123)
	r.Set("rate_ppm", math.NaN())
	r.Facts["adjtimex_state"] = "TIME_OK"
	r.Series["offset"] = []Point{{T: 1, V: 0.5}, {T: 2, V: 0.25}}
	r.Notes = []string{"booted"}
	return r
}

func TestRoundTrip(t *testing.T) {
	var b bytes.Buffer
	if err := Encode(&b, sample()); err != nil {
		t.Fatal(err)
	}
	frame := b.String()
	var old bytes.Buffer
	if err := Encode(&old, New("an earlier boot")); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(frame), "\n")
	// A kernel message between two base64 lines, console CRs, and noise
	// before and after, as a serial log has them.
	noisy := "[    3.1] Run /init as init process\r\n" + lines[0] + "\r\n" + lines[1] + "\r\n" +
		"[   12.5] random: crng init done\r\n" + strings.Join(lines[2:], "\r\n") + "\r\n[   13.0] reboot: Power down\r\n"
	tests := []struct {
		name string
		log  string
	}{
		{"clean", frame},
		{"interleaved", noisy},
		{"two frames, last wins", old.String() + frame},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Extract([]byte(tc.log))
			if err != nil {
				t.Fatalf("Extract: %v", err)
			}
			if diff := cmp.Diff(sample(), got); diff != "" {
				t.Fatalf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExtractErrors(t *testing.T) {
	var b bytes.Buffer
	if err := Encode(&b, sample()); err != nil {
		t.Fatal(err)
	}
	frame := b.String()
	lines := strings.Split(strings.TrimSpace(frame), "\n")
	tests := []struct {
		name string
		log  string
		want error
	}{
		{"empty", "", ErrNoReport},
		{"truncated (guest killed)", strings.Join(lines[:len(lines)-2], "\n"), ErrNoReport},
		{"a line lost", strings.Join(append(append([]string{}, lines[:2]...), lines[3:]...), "\n"), ErrCorrupt},
		{"a character changed", strings.Replace(frame, lines[1], "A"+lines[1][1:], 1), ErrCorrupt},
		{"bad BEGIN", "@@NTPTOOL-E2E-REPORT BEGIN len=x@@\n" + endLine, ErrCorrupt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Extract([]byte(tc.log))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Extract: %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzExtract(f *testing.F) {
	var b bytes.Buffer
	if err := Encode(&b, sample()); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	f.Add([]byte("@@NTPTOOL-E2E-REPORT BEGIN len=2 sha256=44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a@@\ne30=\n@@NTPTOOL-E2E-REPORT END@@\n"))
	f.Fuzz(func(t *testing.T, log []byte) {
		r, err := Extract(log)
		if err == nil && r == nil {
			t.Fatal("nil report without error")
		}
		if err == nil {
			// A report that decoded must encode and decode again.
			var b bytes.Buffer
			if err := Encode(&b, r); err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			if _, err := Extract(b.Bytes()); err != nil {
				t.Fatalf("re-extract: %v", err)
			}
		}
	})
}
