package sim

import "math"

// Random is glibc's random() after srandom(seed): the TYPE_3 additive
// feedback generator (degree 31, separation 3) with glibc's seeding, so a
// seed gives bit for bit the sequence a C program linked with glibc gets.
// The simulator uses it only to seed the private generators (see Gen).
type Random struct {
	state [31]int32
	front int // index of glibc's fptr
	rear  int // index of glibc's rptr
}

// NewRandom returns the generator as glibc's srandom(seed) leaves it:
// r0 = seed (0 is taken as 1, as glibc does); r_i = 16807·r_{i−1} mod
// (2^31−1) for i = 1..30, computed with Schrage's method on signed 32-bit
// values exactly as glibc does it (a negative result gets +2147483647); then
// 310 outputs are discarded.
func NewRandom(seed uint32) *Random {
	if seed == 0 {
		seed = 1
	}
	r := &Random{front: 3, rear: 0}
	word := int32(seed)
	r.state[0] = word
	for i := 1; i < len(r.state); i++ {
		hi := int64(word) / 127773
		lo := int64(word) % 127773
		next := 16807*lo - 2836*hi
		if next < 0 {
			next += 2147483647
		}
		word = int32(next)
		r.state[i] = word
	}
	for range 10 * len(r.state) {
		r.Next()
	}
	return r
}

// Next returns the next random() output, in [0, 2^31): r_i = (r_{i−31} +
// r_{i−3}) mod 2^32, output r_i >> 1.
func (r *Random) Next() uint32 {
	v := uint32(r.state[r.front]) + uint32(r.state[r.rear])
	r.state[r.front] = int32(v)
	r.front++
	if r.front == len(r.state) {
		r.front = 0
	}
	r.rear++
	if r.rear == len(r.state) {
		r.rear = 0
	}
	return v >> 1
}

// Gen is the private generator of one random term of a scenario (one link
// direction's delay, the client's wander, ...): glibc's TYPE_0 random_r,
// s = (s·1103515245 + 12345) & 0x7fffffff, seeded with one output of the
// global Random. Private generators keep the terms independent: how many
// packets one link carries does not shift the noise of another.
type Gen struct {
	s uint32
}

// NewGen returns a TYPE_0 generator as glibc's srandom_r(seed) leaves it
// (seed 0 is taken as 1).
func NewGen(seed uint32) *Gen {
	if seed == 0 {
		seed = 1
	}
	return &Gen{s: seed}
}

// Next returns the next output, in [0, 2^31).
func (g *Gen) Next() uint32 {
	g.s = (g.s*1103515245 + 12345) & 0x7fffffff
	return g.s
}

// Uniform returns a uniform variate in (0, 1) built from two outputs, r1
// drawn first: ((r2 & 0x7fffffff) + ((r1 & 0x7fffffff) + 1)/2147483649) /
// 2147483648.
func (g *Gen) Uniform() float64 {
	x := (float64(g.Next()&0x7fffffff) + 1) / 2147483649.0
	return (float64(g.Next()&0x7fffffff) + x) / 2147483648.0
}

// Exponential returns an Exp(1) variate, −ln(Uniform()), with glibc's log.
func (g *Gen) Exponential() float64 {
	return -glibcLog(g.Uniform())
}

// Normal returns an N(0, 1) variate by Marsaglia's polar method: two
// uniforms per try, x·sqrt(−2 ln s / s) with glibc's log; the second variate
// is discarded, as clknetsim does. The float64 conversions keep the Go
// compiler from fusing x·x + y·y into an FMA (it does on arm64), which C
// compiled for baseline x86-64 does not do.
func (g *Gen) Normal() float64 {
	for {
		x := float64(2*g.Uniform()) - 1
		y := float64(2*g.Uniform()) - 1
		s := float64(x*x) + float64(y*y)
		if s < 1 {
			return x * math.Sqrt(-2*glibcLog(s)/s)
		}
	}
}

// LinkNoise holds the private generators of one client↔server link.
type LinkNoise struct {
	// Up draws the client→server delays, one Exponential per packet.
	Up *Gen
	// Down draws the server→client delays, one Exponential per packet.
	Down *Gen
	// UpLoss and DownLoss draw one Uniform per packet in their direction,
	// and only when the link's loss fraction is above zero.
	UpLoss, DownLoss *Gen
}

// Noise is the set of private generators of a scenario with one client
// and len(Links) servers.
type Noise struct {
	// Links[i] is the link between the client and server i.
	Links []LinkNoise
	// Wander draws the client's frequency random walk, one Normal per
	// second of true time.
	Wander *Gen
}

// Global random() outputs (1-based) that seed the generators of the
// standard two-node scenario, as SIMULATION.md pins them.
const (
	seedIndexUp     = 5
	seedIndexDown   = 6
	seedIndexWander = 9
	standardSeeds   = 9
)

// NewNoise builds the generators for a scenario with the given number of
// servers from srandom(seed), each seeded with one global random() output
// in construction order (outputs numbered from 1):
//
//   - #1..#9 are the standard two-node scenario's nine terms: #5 seeds the
//     link client→server 0, #6 the link server 0→client, #9 the client's
//     wander; #1..#4, #7 and #8 seed terms this model does not have (the
//     outputs are drawn and dropped so the others keep their seeds).
//   - Server i ≥ 1 gets #(10+2(i−1)) for its client→server link and
//     #(11+2(i−1)) for server→client. Extra servers are appended after the
//     nine rather than interleaved, so adding servers does not change the
//     client's wander or server 0's delays: a one-server and a
//     three-server run with the same seed share that noise.
//   - Then, for each server i in order, two loss generators (client→server,
//     server→client). They come last so that a lossless scenario's other
//     generators do not depend on whether loss exists.
func NewNoise(seed uint32, servers int) *Noise {
	global := NewRandom(seed)
	var first [standardSeeds + 1]uint32 // 1-based
	for i := 1; i <= standardSeeds; i++ {
		first[i] = global.Next()
	}
	n := &Noise{
		Links:  make([]LinkNoise, servers),
		Wander: NewGen(first[seedIndexWander]),
	}
	if servers == 0 {
		return n
	}
	n.Links[0].Up = NewGen(first[seedIndexUp])
	n.Links[0].Down = NewGen(first[seedIndexDown])
	for i := 1; i < servers; i++ {
		n.Links[i].Up = NewGen(global.Next())
		n.Links[i].Down = NewGen(global.Next())
	}
	for i := range n.Links {
		n.Links[i].UpLoss = NewGen(global.Next())
		n.Links[i].DownLoss = NewGen(global.Next())
	}
	return n
}
