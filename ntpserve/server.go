package ntpserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/ntptool/ntptool/config"
	"github.com/ntptool/ntptool/ntpwire"
)

// Config configures a Server. The zero value listens nowhere; every other
// field states its default.
type Config struct {
	// Listen lists UDP addresses: "127.0.0.1:123", "[::1]:123", ":123"
	// (every address, IPv4 and IPv6). Port 0 picks a free port (see Addrs).
	Listen []string
	// Allow lists client CIDRs (or addresses) that are served; empty allows
	// everybody not denied.
	Allow []string
	// Deny lists client CIDRs that are never served; it wins over Allow.
	Deny []string
	// DenyKoD answers a denied client with a KoD DENY (itself rate-limited)
	// instead of silence. Default false.
	DenyKoD bool
	// DisableRateLimit turns the per-client rate limit off. Default false
	// (rate limiting on).
	DisableRateLimit bool
	// RateLimit configures the per-client rate limit.
	RateLimit RateLimitConfig
	// Workers is the number of SO_REUSEPORT sockets (one goroutine each) per
	// listen address. Default runtime.GOMAXPROCS(0).
	Workers int
	// Batch is the number of packets read or sent per system call
	// (recvmmsg/sendmmsg). Default 32.
	Batch int
	// ReadBuffer is SO_RCVBUF per socket in bytes (capped by the kernel's
	// net.core.rmem_max). Default 4 MiB.
	ReadBuffer int
	// TxChunk is how many replies share one transmit timestamp and one
	// sendmmsg call. A stamp is taken just before its chunk is sent, so it
	// is never late, and up to TxChunk-1 replies leave between it and the
	// last packet of the chunk (about 1 µs each on loopback). 1 stamps every
	// reply just before its own send. Default 8 (TestTransmitTimestampAccuracy
	// and bench/serve measure the trade).
	TxChunk int
}

// defaultTxChunk: replies per transmit timestamp and sendmmsg call.
const defaultTxChunk = 8

// Errors returned by New and Listen.
var (
	// ErrNoListen: Config.Listen is empty.
	ErrNoListen = errors.New("no listen address")
	// ErrNoClock: New was given no Now function.
	ErrNoClock = errors.New("no clock (Now function)")
)

// FromConfig maps the configuration's [server] section to a Config (the
// listen addresses, access control and rate limiting; the rest keeps its
// defaults).
func FromConfig(c config.Server) Config {
	return Config{
		Listen:           append([]string(nil), c.Listen...),
		Allow:            append([]string(nil), c.Allow...),
		Deny:             append([]string(nil), c.Deny...),
		DenyKoD:          c.DenyKoD,
		DisableRateLimit: !c.RateLimit.Enabled,
		RateLimit: RateLimitConfig{
			Interval:  c.RateLimit.Interval.Duration,
			Burst:     c.RateLimit.Burst,
			KoD:       c.RateLimit.KoD,
			TableSize: c.RateLimit.TableSize,
		},
	}
}

// Server answers NTP client requests on UDP sockets. Make one with New,
// open its sockets with Listen, run it with Serve.
type Server struct {
	cfg       Config
	src       StateSource
	refresher Refresher
	now       func() time.Time
	log       *slog.Logger
	acl       *ACL
	limiter   *RateLimiter
	ratePoll  int8
	stats     Stats

	mu      sync.Mutex
	sockets []*socket
	serving bool
}

// New validates cfg and builds a server that answers with the state from
// src and reads the wall clock (for transmit timestamps, and receive
// timestamps when the kernel gives none) with now: main passes time.Now,
// tests a fake. logger may be nil (discard).
func New(cfg Config, src StateSource, now func() time.Time, logger *slog.Logger) (*Server, error) {
	if src == nil {
		return nil, errors.New("ntpserve: no state source")
	}
	if now == nil {
		return nil, ErrNoClock
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 32
	}
	if cfg.Batch > 1024 {
		cfg.Batch = 1024
	}
	if cfg.ReadBuffer <= 0 {
		cfg.ReadBuffer = 4 << 20
	}
	if cfg.TxChunk <= 0 {
		cfg.TxChunk = defaultTxChunk
	}
	acl, err := NewACL(cfg.Allow, cfg.Deny)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, src: src, now: now, log: logger, acl: acl}
	s.refresher, _ = src.(Refresher)
	if !cfg.DisableRateLimit {
		if s.limiter, err = NewRateLimiter(cfg.RateLimit); err != nil {
			return nil, err
		}
		s.ratePoll = pollForInterval(s.limiter.Interval())
	}
	return s, nil
}

// Stats returns the server's counters.
func (s *Server) Stats() *Stats { return &s.stats }

// Listen opens the sockets: Config.Workers SO_REUSEPORT sockets per listen
// address. On error nothing stays open.
func (s *Server) Listen(ctx context.Context) error {
	if len(s.cfg.Listen) == 0 {
		return ErrNoListen
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sockets) > 0 {
		return errors.New("ntpserve: already listening")
	}
	var socks []*socket
	for _, addr := range s.cfg.Listen {
		for i := 0; i < s.cfg.Workers; i++ {
			sk, err := listenSocket(ctx, addr, s.cfg.ReadBuffer)
			if err != nil {
				for _, o := range socks {
					o.close()
				}
				return fmt.Errorf("listen %s: %w", addr, err)
			}
			if i == 0 {
				// Port 0: the other sockets join the port the first got.
				addr = sk.conn.LocalAddr().String()
			}
			socks = append(socks, sk)
		}
	}
	s.sockets = socks
	return nil
}

// Addrs returns the addresses listened on (one per listen address), with
// the actual port when port 0 was asked for.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []net.Addr
	for i := 0; i < len(s.sockets); i += s.cfg.Workers {
		out = append(out, s.sockets[i].conn.LocalAddr())
	}
	return out
}

// Serve answers requests until ctx is cancelled, then closes the sockets and
// returns nil once every goroutine has stopped; it returns an error if a
// socket fails. It calls Listen if that was not done.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	opened := len(s.sockets) > 0
	if s.serving {
		s.mu.Unlock()
		return errors.New("ntpserve: already serving")
	}
	s.serving = true
	s.mu.Unlock()
	if !opened {
		if err := s.Listen(ctx); err != nil {
			return err
		}
	}
	s.mu.Lock()
	socks := s.sockets
	s.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(socks))
	for _, sk := range socks {
		w := newWorker(s, sk, s.stats.newShard())
		go func() { errc <- w.run() }()
	}
	go func() {
		<-ctx.Done()
		for _, sk := range socks {
			sk.close()
		}
	}()
	var first error
	for range socks {
		if err := <-errc; err != nil && first == nil {
			first = err
			cancel() // one socket failed: stop them all
		}
	}
	if ctx.Err() != nil && errors.Is(first, net.ErrClosed) {
		first = nil
	}
	return first
}

// handle decides what to answer to one request from addr received at rx
// (rxNS: the same instant in Unix ns) and builds the reply into out. The
// transmit timestamp is left for the caller to set. This is the whole
// per-packet policy; the socket code only moves bytes.
func (s *Server) handle(out, req []byte, from netip.Addr, rx ntpwire.Timestamp, rxNS int64, st *State) (int, Verdict) {
	r, v := ParseRequest(req)
	if v != Reply {
		return 0, v
	}
	if !s.acl.Allowed(from) {
		if !s.cfg.DenyKoD {
			return 0, DropDenied
		}
		// A KoD DENY goes to whatever address the packet claims: limit it
		// like a reply so it cannot be used to flood a spoofed victim.
		if s.limiter != nil {
			if ok, _ := s.limiter.Allow(from, rxNS); !ok {
				return 0, DropDenied
			}
		}
		return BuildKoD(out, r, KissDeny, r.Poll), KoDDeny
	}
	if s.limiter != nil {
		if ok, kod := s.limiter.Allow(from, rxNS); !ok {
			if kod {
				return BuildKoD(out, r, KissRate, s.ratePoll), KoDRate
			}
			return 0, DropRate
		}
	}
	return BuildReply(out, r, rx, 0, st), Reply
}
