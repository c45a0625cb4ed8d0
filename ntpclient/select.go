package ntpclient

import (
	"fmt"
	"math"
	"sort"
)

// Candidate is one source's estimate for selection: its offset and the
// half-width of its correctness interval [OffsetS−BoundS, OffsetS+BoundS]
// (RFC 5905 section 11.2.1: root distance, here with the estimate's own
// uncertainty added), in seconds.
type Candidate struct {
	OffsetS, BoundS float64
}

// Select returns the indices (ascending) of the truechimers: the candidates
// whose intervals contain the point covered by the most intervals
// (Marzullo's algorithm, as in RFC 5905 section 11.2.1), when they are
// more than half of voters, the number of sources that may take part (at
// least len(cands): a source that has not answered yet still counts, so
// that one early reply is not a majority). The others are falsetickers.
func Select(cands []Candidate, voters int) ([]int, error) {
	voters = max(voters, len(cands))
	if len(cands) == 0 {
		return nil, ErrNoMajority
	}
	for _, c := range cands {
		if math.IsNaN(c.OffsetS) || math.IsInf(c.OffsetS, 0) || !(c.BoundS >= 0) || math.IsInf(c.BoundS, 0) {
			return nil, fmt.Errorf("%w: an estimate is not finite", ErrNoMajority)
		}
	}
	type edge struct {
		at    float64
		start bool
	}
	edges := make([]edge, 0, 2*len(cands))
	for _, c := range cands {
		edges = append(edges, edge{c.OffsetS - c.BoundS, true}, edge{c.OffsetS + c.BoundS, false})
	}
	// Starts before ends at the same point, so touching intervals overlap.
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at != edges[j].at {
			return edges[i].at < edges[j].at
		}
		return edges[i].start && !edges[j].start
	})
	best, n := 0, 0
	var point float64
	for _, e := range edges {
		if e.start {
			n++
			if n > best {
				best, point = n, e.at
			}
		} else {
			n--
		}
	}
	if 2*best <= voters || best == 0 {
		return nil, ErrNoMajority
	}
	var idx []int
	for i, c := range cands {
		if c.OffsetS-c.BoundS <= point && point <= c.OffsetS+c.BoundS {
			idx = append(idx, i)
		}
	}
	return idx, nil
}
