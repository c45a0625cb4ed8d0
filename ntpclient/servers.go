package ntpclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
)

// ServersOptions configures QueryServers. The zero value is ready to use.
type ServersOptions struct {
	// Options applies to every exchange.
	Options
	// Samples is the number of exchanges per address; the valid reply with
	// the lowest delay is kept. Exchanges follow each other as soon as the
	// previous reply arrives; a KoD ends them. Default 1.
	Samples int
	// Network restricts name resolution: "ip" (default), "ip4" or "ip6".
	Network string
	// Resolver resolves names; nil uses net.DefaultResolver.
	Resolver *net.Resolver
}

// Result is what QueryServers learnt about one server address.
type Result struct {
	// Server is the server as the caller named it.
	Server string
	// Address is the resolved address; invalid when resolution failed.
	Address netip.AddrPort
	// Response is the best valid reply, else the last invalid one, else nil.
	Response *Response
	// Err is nil when Response is valid, else why this address gave no
	// valid reply (a validation error, a timeout, a resolution failure).
	Err error
	// Replies counts the replies received (valid or not).
	Replies int
}

// QueryServers queries every server, and every address each name resolves
// to, in parallel. Results come in the order of servers, then of addresses
// as the resolver returned them.
func QueryServers(ctx context.Context, servers []string, opt ServersOptions) []Result {
	perServer := make([][]Result, len(servers))
	var wg sync.WaitGroup
	for i, server := range servers {
		wg.Go(func() { perServer[i] = queryServer(ctx, server, opt) })
	}
	wg.Wait()
	var all []Result
	for _, rs := range perServer {
		all = append(all, rs...)
	}
	return all
}

// queryServer resolves one server and queries its addresses in parallel.
func queryServer(ctx context.Context, server string, opt ServersOptions) []Result {
	host, port, err := SplitHostPort(server, opt.Port)
	if err != nil {
		return []Result{{Server: server, Err: err}}
	}
	addrs, err := resolve(ctx, host, opt)
	if err != nil {
		return []Result{{Server: server, Err: err}}
	}
	results := make([]Result, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Go(func() {
			results[i] = sampleAddress(ctx, server, netip.AddrPortFrom(a, uint16(port)), opt)
		})
	}
	wg.Wait()
	return results
}

func resolve(ctx context.Context, host string, opt ServersOptions) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip}, nil
	}
	network := opt.Network
	if network == "" {
		network = "ip"
	}
	r := opt.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, network, host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", host)
	}
	for i, a := range addrs {
		addrs[i] = a.Unmap()
	}
	return addrs, nil
}

// sampleAddress runs the exchanges with one address and keeps the best.
func sampleAddress(ctx context.Context, server string, addr netip.AddrPort, opt ServersOptions) Result {
	res := Result{Server: server, Address: addr}
	samples := max(opt.Samples, 1)
	var best *Response
	for range samples {
		resp, err := Query(ctx, addr.String(), opt.Options)
		if resp != nil {
			res.Replies++
		}
		if err == nil {
			if best == nil || resp.Delay < best.Delay {
				best = resp
			}
			continue
		}
		// Keep the most telling failure: a reply's reason beats a timeout.
		if resp != nil || res.Response == nil {
			res.Response, res.Err = resp, err
		}
		if errors.Is(err, ErrKissOfDeath) || ctx.Err() != nil {
			break
		}
	}
	if best != nil {
		res.Response, res.Err = best, nil
	}
	return res
}

// FormatAddress prints an address as "host:port", omitting port 123.
func FormatAddress(a netip.AddrPort) string {
	if !a.IsValid() {
		return "-"
	}
	if a.Port() == DefaultPort {
		return a.Addr().String()
	}
	return net.JoinHostPort(a.Addr().String(), strconv.Itoa(int(a.Port())))
}
