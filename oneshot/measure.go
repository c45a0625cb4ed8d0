package oneshot

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/estimator"
	"github.com/ntptool/ntptool/ntpclient"
	"github.com/ntptool/ntptool/selection"
)

// Role is a server address's part in a measurement.
type Role string

// Roles, after the daemon's (ntptool sources).
const (
	// RoleCombined: in the majority and combined into the offset.
	RoleCombined Role = "combined"
	// RoleTruechimer: in the majority, left out by the clustering (its
	// offset is off the others' by more than their noise).
	RoleTruechimer Role = "truechimer"
	// RoleFalseticker: its interval is outside the majority's, or no
	// majority agrees.
	RoleFalseticker Role = "falseticker"
	// RoleNoVote: no valid reply (timeout, KoD, unsynchronised, ...).
	RoleNoVote Role = "no-vote"
)

// Source is what one server address gave.
type Source struct {
	// Server is the server as configured; Address the address queried
	// (invalid if the name did not resolve).
	Server  string
	Address netip.AddrPort
	// Response is the best valid reply (the lowest delay), nil if none.
	Response *ntpclient.Response
	// Err says why there is no valid reply.
	Err error
	// Role is its part in the measurement.
	Role Role
}

// Measurement is the servers' agreement on this clock's offset.
type Measurement struct {
	// Sources are the server addresses, in the order queried.
	Sources []Source
	// Voters counts the addresses with a valid reply: a strict majority
	// of them must agree.
	Voters int
	// Survivors counts the combined ones.
	Survivors int
	// Offset is the servers' time minus this clock's, as combined
	// (positive: this clock is behind): the correction to make. Sigma is
	// its standard deviation.
	Offset, Sigma time.Duration
}

// Errors of Measure.
var (
	// ErrNoReply: no server address gave a valid reply.
	ErrNoReply = errors.New("no server gave a valid reply")
	// ErrNoMajority: the servers that answered do not agree (no strict
	// majority of their intervals shares a point); it wraps
	// selection.ErrNoMajority.
	ErrNoMajority = selection.ErrNoMajority
)

// The model of one reply for the selection.
const (
	// floorSigmaS is the least standard deviation of a reply's offset:
	// timestamps are read to about a microsecond.
	floorSigmaS = 1e-6
	// boundSigmas is how many of its deviations a reply's interval adds
	// to its root distance (as the daemon's).
	boundSigmas = 3
	// oneShotSigmaY is the frequency uncertainty the selection is given:
	// one exchange says nothing of the frequency, and a one-shot
	// correction uses none.
	oneShotSigmaY = 1e-6
)

// Measure selects and combines the valid replies (ntpclient.QueryServers'
// results) with package selection's guarantee. Each valid reply is a
// candidate whose offset (local − server) has the standard deviation of an
// error spread evenly over ± half the round trip (delay/√12, at least
// 1 µs), and whose correctness interval is its root distance (RFC 5905
// §11.2.1: delay/2 + root delay/2 + root dispersion) plus three of those
// deviations; every address with a valid reply votes. It is pure.
func Measure(results []ntpclient.Result) (Measurement, error) {
	m := Measurement{Sources: make([]Source, len(results))}
	var cands []selection.Candidate
	var idx []int // source index of each candidate
	for i, r := range results {
		m.Sources[i] = Source{Server: r.Server, Address: r.Address, Err: r.Err, Role: RoleNoVote}
		if r.Err != nil || r.Response == nil {
			if r.Err == nil {
				m.Sources[i].Err = errors.New("no reply")
			}
			continue
		}
		resp := r.Response
		m.Sources[i].Response = resp
		sigma := math.Max(resp.Delay.Seconds()/math.Sqrt(12), floorSigmaS)
		x := -resp.Offset.Seconds() // local − server
		if math.IsNaN(x) || math.IsInf(x, 0) {
			continue
		}
		cands = append(cands, selection.Candidate{
			Est:    estimator.Estimate{X: x, VarX: sigma * sigma, VarY: oneShotSigmaY * oneShotSigmaY},
			BoundS: resp.RootDistance.Seconds() + boundSigmas*sigma,
		})
		idx = append(idx, i)
	}
	m.Voters = len(cands)
	if m.Voters == 0 {
		return m, fmt.Errorf("%w (%d addresses queried)", ErrNoReply, len(results))
	}
	res, err := selection.Select(cands, selection.Options{Voters: m.Voters})
	if err != nil {
		for _, i := range idx {
			m.Sources[i].Role = RoleFalseticker
		}
		return m, err
	}
	for _, i := range idx {
		m.Sources[i].Role = RoleFalseticker
	}
	for _, c := range res.Truechimers {
		m.Sources[idx[c]].Role = RoleTruechimer
	}
	for _, c := range res.Survivors {
		m.Sources[idx[c]].Role = RoleCombined
	}
	m.Survivors = len(res.Survivors)
	m.Offset = clock.Seconds(-res.Estimate.X)
	m.Sigma = clock.Seconds(math.Sqrt(res.Estimate.VarX))
	return m, nil
}

// Names are the combined sources as "server (address)", for the journal.
func (m Measurement) Names() []string {
	var out []string
	for _, s := range m.Sources {
		if s.Role == RoleCombined {
			out = append(out, fmt.Sprintf("%s (%s)", s.Server, s.Address))
		}
	}
	return out
}
