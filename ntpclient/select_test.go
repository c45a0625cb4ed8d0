package ntpclient

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSelect(t *testing.T) {
	ms := 1e-3
	tests := []struct {
		name    string
		cands   []Candidate
		voters  int
		want    []int
		wantErr error
	}{
		{"one source", []Candidate{{0, ms}}, 0, []int{0}, nil},
		{"1 false of 3", []Candidate{{0, ms}, {50 * ms, ms}, {0.2 * ms, ms}}, 0, []int{0, 2}, nil},
		{"1 false of 4", []Candidate{{0.1 * ms, ms}, {-0.3 * ms, ms}, {-80 * ms, 2 * ms}, {0.5 * ms, ms}}, 0, []int{0, 1, 3}, nil},
		{"2 false of 5 (falsetickers disagree)", []Candidate{{0, ms}, {40 * ms, ms}, {0.5 * ms, ms}, {-40 * ms, ms}, {-0.5 * ms, ms}}, 0, []int{0, 2, 4}, nil},
		{"no majority: 2 against 2", []Candidate{{0, ms}, {0.1 * ms, ms}, {50 * ms, ms}, {50.1 * ms, ms}}, 0, nil, ErrNoMajority},
		{"no majority: all disjoint", []Candidate{{0, ms}, {10 * ms, ms}, {20 * ms, ms}}, 0, nil, ErrNoMajority},
		{"touching intervals agree", []Candidate{{0, ms}, {2 * ms, ms}}, 0, []int{0, 1}, nil},
		{"none", nil, 0, nil, ErrNoMajority},
		{"one early reply of three sources is no majority", []Candidate{{0, ms}}, 3, nil, ErrNoMajority},
		{"two agreeing of three sources are", []Candidate{{0, ms}, {0.5 * ms, ms}}, 3, []int{0, 1}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Select(tc.cands, tc.voters)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Select error = %v, want %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Select (-want +got):\n%s", diff)
			}
		})
	}
}
