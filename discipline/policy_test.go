package discipline

import (
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	def := Policy{StepThreshold: time.Second, StepLimit: 3, Panic: 1000 * time.Second, MaxSlewPPM: 83333}
	tests := []struct {
		name   string
		p      Policy
		offset float64
		update int
		want   Action
	}{
		{"small offset slews", def, 0.1, 0, Slew},
		{"large offset early steps", def, 10, 0, Step},
		{"negative large offset steps", def, -10, 2, Step},
		{"after the limit it slews", def, 10, 3, Slew},
		{"limit -1 always steps", Policy{StepThreshold: time.Second, StepLimit: -1}, 10, 1000, Step},
		{"slew only", Policy{StepThreshold: time.Second, StepLimit: -1, SlewOnly: true}, 10, 0, Slew},
		{"panic holds", def, 2000, 1, Hold},
		{"the first update may step past panic (ntpd -g)", def, -1.5e9, 0, Step},
		{"no panic guard", Policy{StepThreshold: time.Second, StepLimit: 3}, 2000, 0, Step},
		{"threshold 0 never steps", Policy{StepLimit: -1}, 10, 0, Slew},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.p.Decide(tc.offset, tc.update)
			if got != tc.want || (got == Hold) != (err != nil) {
				t.Errorf("Decide(%v, %d) = %v, %v; want %v", tc.offset, tc.update, got, err, tc.want)
			}
		})
	}
}
