package ntpserve

import (
	"sync"
	"sync/atomic"
)

// Stats counts what the server did. Each socket goroutine writes its own
// shard (no shared cache line on the hot path); Snapshot sums them. It is
// safe for concurrent use.
type Stats struct {
	mu     sync.Mutex
	shards []*statShard
}

type statShard struct {
	received   atomic.Uint64
	verdicts   [numVerdicts]atomic.Uint64
	sendErrors atomic.Uint64
	_          [64]byte // keep neighbouring shards off this cache line
}

func (s *Stats) newShard() *statShard {
	sh := &statShard{}
	s.mu.Lock()
	s.shards = append(s.shards, sh)
	s.mu.Unlock()
	return sh
}

// StatsSnapshot is a copy of the counters at one moment. Requests is every
// packet read; each is then counted once under Replies, a KoD or a Drop
// reason.
type StatsSnapshot struct {
	// Requests counts packets received.
	Requests uint64 `json:"requests"`
	// Replies counts normal server replies built.
	Replies uint64 `json:"replies"`
	// KoDRate and KoDDeny count Kiss-o'-Death replies built.
	KoDRate uint64 `json:"kod_rate"`
	KoDDeny uint64 `json:"kod_deny"`
	// DropShort counts packets shorter than 48 bytes.
	DropShort uint64 `json:"drop_short"`
	// DropVersion counts versions other than 1–4.
	DropVersion uint64 `json:"drop_bad_version"`
	// DropControl counts mode 6 (control) packets.
	DropControl uint64 `json:"drop_mode6_control"`
	// DropPrivate counts mode 7 (private, monlist) packets.
	DropPrivate uint64 `json:"drop_mode7_private"`
	// DropMode counts other non-client modes.
	DropMode uint64 `json:"drop_bad_mode"`
	// DropMalformed counts malformed trailers and truncated packets.
	DropMalformed uint64 `json:"drop_malformed"`
	// DropAuth counts requests with a MAC.
	DropAuth uint64 `json:"drop_auth"`
	// DropDenied counts clients refused by the access list.
	DropDenied uint64 `json:"drop_denied"`
	// DropRate counts requests over the rate limit.
	DropRate uint64 `json:"drop_rate"`
	// SendErrors counts replies the kernel refused to send.
	SendErrors uint64 `json:"send_errors"`
}

// Snapshot returns the current counters.
func (s *Stats) Snapshot() StatsSnapshot {
	var v [numVerdicts]uint64
	var out StatsSnapshot
	s.mu.Lock()
	for _, sh := range s.shards {
		out.Requests += sh.received.Load()
		out.SendErrors += sh.sendErrors.Load()
		for i := range v {
			v[i] += sh.verdicts[i].Load()
		}
	}
	s.mu.Unlock()
	out.Replies = v[Reply]
	out.KoDRate = v[KoDRate]
	out.KoDDeny = v[KoDDeny]
	out.DropShort = v[DropShort]
	out.DropVersion = v[DropVersion]
	out.DropControl = v[DropControl]
	out.DropPrivate = v[DropPrivate]
	out.DropMode = v[DropMode]
	out.DropMalformed = v[DropMalformed]
	out.DropAuth = v[DropAuth]
	out.DropDenied = v[DropDenied]
	out.DropRate = v[DropRate]
	return out
}

// Dropped returns the number of requests that got no reply at all.
func (s StatsSnapshot) Dropped() uint64 {
	return s.DropShort + s.DropVersion + s.DropControl + s.DropPrivate + s.DropMode +
		s.DropMalformed + s.DropAuth + s.DropDenied + s.DropRate
}

// add flushes a batch's local counts into the shard.
func (sh *statShard) add(received int, counts *[numVerdicts]uint32) {
	sh.received.Add(uint64(received))
	for i, c := range counts {
		if c != 0 {
			sh.verdicts[i].Add(uint64(c))
			counts[i] = 0
		}
	}
}
