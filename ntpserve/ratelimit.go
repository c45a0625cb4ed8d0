package ntpserve

import (
	"errors"
	"hash/maphash"
	"net/netip"
	"sync"
	"time"
)

// RateLimitConfig configures RateLimiter. Zero fields take the defaults of
// config.RateLimit.
type RateLimitConfig struct {
	// Interval is the mean interval allowed between one client's requests.
	// Default 1s.
	Interval time.Duration
	// Burst is how many requests a client may send back to back before the
	// interval applies. Default 16.
	Burst int
	// KoD sends a KoD RATE to a limited client, at most once per
	// KoDHoldoff. Default false (the zero value); config's default is true.
	KoD bool
	// KoDHoldoff is the least time between two KoD RATE to one client.
	// Default max(8 × Interval, 1s).
	KoDHoldoff time.Duration
	// TableSize is the number of client slots, rounded up to a power of
	// two; memory (24 bytes a slot) is allocated once. Default 65536.
	TableSize int
}

// ErrRateLimitConfig reports an unusable rate-limit configuration.
var ErrRateLimitConfig = errors.New("invalid rate limit")

// RateLimiter limits how often each client address is answered, in a
// fixed-size table: its memory never grows, whatever the number of sources
// (a flood of spoofed addresses only recycles slots).
//
// Each slot holds a generic-cell-rate (leaky bucket) state: the client is
// answered while its theoretical arrival time is no more than
// (Burst-1)×Interval ahead of now, and each answer pushes it on by
// Interval; dropped requests cost nothing, so a client sending too fast is
// answered at exactly one reply per Interval. Slots are found by a keyed
// hash (a random seed per limiter, so an attacker cannot aim at a chosen
// client's slot) in buckets of two; a new address evicts the less recently
// charged slot of its bucket, which protects busy clients from eviction by
// one-off spoofed sources. An evicted client simply starts again with a full
// burst.
type RateLimiter struct {
	seed       maphash.Seed
	slots      []rlSlot
	locks      []paddedMutex
	bucketMask uint64
	lockMask   uint64
	interval   int64 // ns
	tau        int64 // ns: (Burst-1) × Interval
	kod        bool
	kodHoldoff int64 // ns
}

type rlSlot struct {
	tag   uint64 // address hash; 0 = empty
	tat   int64  // theoretical arrival time, Unix ns
	kodAt int64  // earliest next KoD, Unix ns
}

type paddedMutex struct {
	sync.Mutex
	_ [64 - 8]byte
}

// NewRateLimiter allocates the table.
func NewRateLimiter(cfg RateLimitConfig) (*RateLimiter, error) {
	if cfg.Interval == 0 {
		cfg.Interval = time.Second
	}
	if cfg.Burst == 0 {
		cfg.Burst = 16
	}
	if cfg.TableSize == 0 {
		cfg.TableSize = 65536
	}
	if cfg.KoDHoldoff == 0 {
		cfg.KoDHoldoff = max(8*cfg.Interval, time.Second)
	}
	switch {
	case cfg.Interval < 0:
		return nil, errors.Join(ErrRateLimitConfig, errors.New("interval must be positive"))
	case cfg.Burst < 1:
		return nil, errors.Join(ErrRateLimitConfig, errors.New("burst must be at least 1"))
	case cfg.TableSize < 2 || cfg.TableSize > 1<<26:
		return nil, errors.Join(ErrRateLimitConfig, errors.New("table size must be 2 … 67108864"))
	}
	size := 2
	for size < cfg.TableSize {
		size <<= 1
	}
	nlocks := min(size/2, 1024)
	return &RateLimiter{
		seed:       maphash.MakeSeed(),
		slots:      make([]rlSlot, size),
		locks:      make([]paddedMutex, nlocks),
		bucketMask: uint64(size/2 - 1),
		lockMask:   uint64(nlocks - 1),
		interval:   int64(cfg.Interval),
		tau:        int64(cfg.Burst-1) * int64(cfg.Interval),
		kod:        cfg.KoD,
		kodHoldoff: int64(cfg.KoDHoldoff),
	}, nil
}

// Slots returns the number of slots in the table.
func (l *RateLimiter) Slots() int { return len(l.slots) }

// Interval returns the configured interval.
func (l *RateLimiter) Interval() time.Duration { return time.Duration(l.interval) }

// Allow charges one request from addr at nowNS (Unix ns) and reports whether
// it may be answered; when it may not, kod says whether to send a KoD RATE
// instead of silence. It allocates nothing and is safe for concurrent use.
func (l *RateLimiter) Allow(addr netip.Addr, nowNS int64) (ok, kod bool) {
	b := addr.Unmap().As16()
	h := maphash.Bytes(l.seed, b[:])
	if h == 0 {
		h = 1
	}
	bucket := h & l.bucketMask
	mu := &l.locks[bucket&l.lockMask]
	mu.Lock()
	s0, s1 := &l.slots[2*bucket], &l.slots[2*bucket+1]
	var s *rlSlot
	switch {
	case s0.tag == h:
		s = s0
	case s1.tag == h:
		s = s1
	default:
		s = s0
		if s1.tat < s0.tat {
			s = s1
		}
		*s = rlSlot{tag: h, tat: nowNS}
	}
	// A clock stepped back would leave tat far ahead: forget the debt.
	if s.tat-nowNS > l.tau+l.interval {
		s.tat = nowNS
	}
	if s.tat-nowNS <= l.tau {
		s.tat = max(s.tat, nowNS) + l.interval
		mu.Unlock()
		return true, false
	}
	if l.kod && (nowNS >= s.kodAt || s.kodAt-nowNS > l.kodHoldoff) {
		s.kodAt = nowNS + l.kodHoldoff
		kod = true
	}
	mu.Unlock()
	return false, kod
}
