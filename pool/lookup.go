package pool

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Resolver resolves host names; *net.Resolver (net.DefaultResolver)
// satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Lookuper runs the Manager's lookups off the daemon's loop, each in its
// own goroutine bounded by a timeout, and reports the results on a
// channel the loop selects on.
type Lookuper struct {
	r       Resolver
	timeout time.Duration
	results chan Result
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// NewLookuper returns a Lookuper over r; timeout bounds each lookup
// (default 10 s).
func NewLookuper(r Resolver, timeout time.Duration) *Lookuper {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Lookuper{r: r, timeout: timeout, results: make(chan Result, 16), ctx: ctx, cancel: cancel}
}

// Results is the channel the results arrive on.
func (l *Lookuper) Results() <-chan Result { return l.results }

// Start runs the lookups in the background (the Manager asks for at most
// one per name at a time).
func (l *Lookuper) Start(lookups ...Lookup) {
	for _, lk := range lookups {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			ctx, cancel := context.WithTimeout(l.ctx, l.timeout)
			defer cancel()
			addrs, err := l.r.LookupNetIP(ctx, "ip", lk.Name)
			if err != nil {
				err = fmt.Errorf("resolve %s: %w", lk.Name, err)
			}
			select {
			case l.results <- Result{Key: lk.Key, Name: lk.Name, Addrs: addrs, Err: err}:
			case <-l.ctx.Done(): // closed: nobody reads
			}
		}()
	}
}

// Close cancels the lookups in flight and waits for their goroutines.
func (l *Lookuper) Close() {
	l.cancel()
	l.wg.Wait()
}

// ErrNoSuchHost is what StaticResolver answers for a name it does not know.
var ErrNoSuchHost = errors.New("no such host")

// StaticResolver is a Resolver for tests: it answers from a table that
// the test changes as it goes, and counts the lookups. Safe for
// concurrent use.
type StaticResolver struct {
	mu      sync.Mutex
	answers map[string][]netip.Addr
	errs    map[string]error
	calls   map[string]int
	block   map[string]bool
}

// NewStaticResolver returns a StaticResolver that knows no name.
func NewStaticResolver() *StaticResolver {
	return &StaticResolver{answers: map[string][]netip.Addr{}, errs: map[string]error{}, calls: map[string]int{}, block: map[string]bool{}}
}

// Set makes name resolve to addrs (address literals).
func (r *StaticResolver) Set(name string, addrs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var as []netip.Addr
	for _, a := range addrs {
		as = append(as, netip.MustParseAddr(a))
	}
	r.answers[name] = as
	delete(r.errs, name)
}

// SetError makes lookups of name fail with err.
func (r *StaticResolver) SetError(name string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs[name] = err
}

// Block makes lookups of name wait until their context ends (a DNS server
// that never answers).
func (r *StaticResolver) Block(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.block[name] = true
}

// Calls counts the lookups of name.
func (r *StaticResolver) Calls(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[name]
}

// LookupNetIP answers from the table.
func (r *StaticResolver) LookupNetIP(ctx context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	r.calls[host]++
	block, err, addrs := r.block[host], r.errs[host], r.answers[host]
	r.mu.Unlock()
	if block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	if addrs == nil {
		return nil, ErrNoSuchHost
	}
	return append([]netip.Addr(nil), addrs...), nil
}
