package ntpclient

import (
	"errors"
	"sort"
)

// Candidate is one source's estimate for selection: its offset and the
// half-width of its correctness interval [Offset−Bound, Offset+Bound]
// (RFC 5905 section 11.2.1: root distance, here with the estimate's own
// uncertainty added), in seconds.
type Candidate struct {
	Offset, Bound float64
}

// ErrNoMajority means no point is inside the intervals of more than half
// of the candidates: the sources disagree and none can be trusted.
var ErrNoMajority = errors.New("no majority of sources agree")

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
	type edge struct {
		at    float64
		start bool
	}
	edges := make([]edge, 0, 2*len(cands))
	for _, c := range cands {
		edges = append(edges, edge{c.Offset - c.Bound, true}, edge{c.Offset + c.Bound, false})
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
	if 2*best <= voters {
		return nil, ErrNoMajority
	}
	var idx []int
	for i, c := range cands {
		if c.Offset-c.Bound <= point && point <= c.Offset+c.Bound {
			idx = append(idx, i)
		}
	}
	return idx, nil
}
