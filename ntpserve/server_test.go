package ntpserve

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/ntptool/ntptool/ntpwire"

	"github.com/beevik/ntp"
	"github.com/google/go-cmp/cmp"
)

// startServer runs a server on the given listen addresses until the test
// ends. The wall clock (time.Now) is injected, as main does: these tests
// compare against real clients.
func startServer(t *testing.T, cfg Config, src StateSource) *Server {
	t.Helper()
	s, err := New(cfg, src, time.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Listen(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
	})
	return s
}

func localStratum2(t *testing.T) StateSource {
	t.Helper()
	src, err := NewSystemSource(SystemConfig{LocalStratum: 2}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func hasIPv6Loopback() bool {
	c, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// exchange sends req on c and returns the next reply whose origin timestamp
// matches req's transmit timestamp; other replies are returned in stale.
func exchange(t *testing.T, c net.Conn, req []byte) (reply []byte, stale [][]byte) {
	t.Helper()
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	want := binary.BigEndian.Uint64(req[offTransmit:])
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 2048)
	for {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("waiting for the reply to %x: %v", want, err)
		}
		b := append([]byte(nil), buf[:n]...)
		if n >= HeaderLen && binary.BigEndian.Uint64(b[offOrigin:]) == want {
			return b, stale
		}
		stale = append(stale, b)
	}
}

// drain returns what is already queued on c (a short deadline bounds the
// wait; callers first synchronise on a later reply).
func drain(c net.Conn) [][]byte {
	var out [][]byte
	buf := make([]byte, 2048)
	for {
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := c.Read(buf)
		if err != nil {
			return out
		}
		out = append(out, append([]byte(nil), buf[:n]...))
	}
}

func dial(t *testing.T, laddr string, raddr net.Addr) net.Conn {
	t.Helper()
	var la *net.UDPAddr
	if laddr != "" {
		var err error
		if la, err = net.ResolveUDPAddr("udp", laddr); err != nil {
			t.Fatal(err)
		}
	}
	c, err := net.DialUDP("udp", la, raddr.(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestServeBeevik queries the server with beevik/ntp over IPv4 and IPv6
// loopback: a valid stratum-2 reply and an offset under 5 ms.
func TestServeBeevik(t *testing.T) {
	listen := []string{"127.0.0.1:0"}
	if hasIPv6Loopback() {
		listen = append(listen, "[::1]:0")
	}
	s := startServer(t, Config{Listen: listen}, localStratum2(t))
	for _, a := range s.Addrs() {
		t.Run(a.String(), func(t *testing.T) {
			for _, v := range []int{4, 3} { // beevik speaks 3 and 4
				r, err := ntp.QueryWithOptions(a.String(), ntp.QueryOptions{Version: v, Timeout: 3 * time.Second})
				if err != nil {
					t.Fatalf("v%d: %v", v, err)
				}
				if err := r.Validate(); err != nil {
					t.Errorf("v%d: Validate: %v", v, err)
				}
				got := []any{r.Stratum, r.ReferenceID, r.Leap}
				if diff := cmp.Diff([]any{uint8(2), uint32(LocalRefID), ntp.LeapNoWarning}, got); diff != "" {
					t.Errorf("v%d: stratum, refid, leap (-want +got):\n%s", v, diff)
				}
				if off := r.ClockOffset.Abs(); off > 5*time.Millisecond {
					t.Errorf("v%d: offset %v", v, r.ClockOffset)
				}
				t.Logf("v%d: offset %v rtt %v precision %v rootdisp %v", v, r.ClockOffset, r.RTT, r.Precision, r.RootDispersion)
			}
		})
	}
	if got := s.Stats().Snapshot(); got.Replies != uint64(2*len(s.Addrs())) {
		t.Errorf("stats %+v", got)
	}
}

// TestServeWireFields checks a reply's fields byte for byte where they are
// known, and that receive ≤ transmit are near now.
func TestServeWireFields(t *testing.T) {
	s := startServer(t, Config{Listen: []string{"127.0.0.1:0"}}, localStratum2(t))
	c := dial(t, "", s.Addrs()[0])
	xmt := ntpwire.FromTime(time.Now())
	before := time.Now()
	reply, stale := exchange(t, c, mkReq(4, ModeClient, xmt))
	after := time.Now()
	if len(stale) != 0 || len(reply) != HeaderLen {
		t.Fatalf("reply %d bytes, %d stale", len(reply), len(stale))
	}
	f := decode(reply)
	rx, tx := f.Rec.Time(before), f.Xmt.Time(before)
	if rx.Before(before.Add(-time.Millisecond)) || tx.After(after.Add(time.Millisecond)) || tx.Before(rx) {
		t.Errorf("before %v rx %v tx %v after %v", before, rx, tx, after)
	}
	got := fields{Version: f.Version, Mode: f.Mode, Stratum: f.Stratum, Poll: f.Poll, RefID: f.RefID, Org: f.Org}
	want := fields{Version: 4, Mode: ModeServer, Stratum: 2, Poll: 6, RefID: LocalRefID, Org: xmt}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestServeDropRulesOnWire sends every kind of packet that must be dropped,
// then a good request; the first reply must be the good one's, and each
// drop is counted under its reason.
func TestServeDropRulesOnWire(t *testing.T) {
	// One worker: the socket is a FIFO, so the good reply proves the bad
	// packets were all processed.
	s := startServer(t, Config{Listen: []string{"127.0.0.1:0"}, Workers: 1, Deny: []string{"127.0.0.2"}}, localStratum2(t))
	c := dial(t, "", s.Addrs()[0])
	bad := [][]byte{
		mkReq(4, ModeClient, 1)[:47], // short
		{0x23},                       // 1 byte
		mkReq(2, ModeControl, 0),     // mode 6 (ntpq)
		mkReq(2, ModePrivate, 0, make([]byte, 144)...),     // mode 7 (monlist)
		mkReq(4, ModeServer, 2),                            // mode 4
		mkReq(4, ModeSymActive, 3),                         // mode 1
		mkReq(0, ModeClient, 4),                            // version 0
		mkReq(5, ModeClient, 5),                            // version 5
		mkReq(4, ModeClient, 6, make([]byte, 20)...),       // unknown MAC
		mkReq(4, ModeClient, 7, 1, 2, 3),                   // malformed trailer
		mkReq(4, ModeClient, 8, make([]byte, rxBufLen)...), // truncated by the server's buffer
	}
	for _, b := range bad {
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	denied := dial(t, "127.0.0.2:0", s.Addrs()[0])
	if _, err := denied.Write(mkReq(4, ModeClient, 9)); err != nil {
		t.Fatal(err)
	}
	good := mkReq(4, ModeClient, 0x1234567890)
	_, stale := exchange(t, c, good)
	if len(stale) != 0 {
		t.Errorf("%d replies to bad packets: %x", len(stale), stale)
	}
	if got := drain(denied); len(got) != 0 {
		t.Errorf("denied client got %d replies", len(got))
	}
	got := s.Stats().Snapshot()
	want := StatsSnapshot{Requests: uint64(len(bad)) + 2, Replies: 1, DropShort: 2, DropControl: 1, DropPrivate: 1,
		DropMode: 2, DropVersion: 2, DropAuth: 1, DropMalformed: 2, DropDenied: 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// TestServeKoDRateOnWire: a burst of 10 from one client with burst 4 gets 4
// replies and one KoD RATE.
func TestServeKoDRateOnWire(t *testing.T) {
	s := startServer(t, Config{Listen: []string{"127.0.0.1:0"}, Workers: 1,
		RateLimit: RateLimitConfig{Interval: time.Hour, Burst: 4, KoD: true}}, localStratum2(t))
	c := dial(t, "127.0.0.3:0", s.Addrs()[0])
	for i := range 10 {
		if _, err := c.Write(mkReq(4, ModeClient, ntpwire.Timestamp(100+i))); err != nil {
			t.Fatal(err)
		}
	}
	// A second client's reply proves the burst has been processed.
	exchange(t, dial(t, "127.0.0.4:0", s.Addrs()[0]), mkReq(4, ModeClient, 0xabcdef))
	var kinds []string
	for _, r := range drain(c) {
		f := decode(r)
		switch {
		case f.Stratum == 0 && f.RefID == KissRate:
			kinds = append(kinds, "RATE")
		case f.Stratum == 2:
			kinds = append(kinds, "reply")
		default:
			kinds = append(kinds, "?")
		}
	}
	if diff := cmp.Diff([]string{"reply", "reply", "reply", "reply", "RATE"}, kinds); diff != "" {
		t.Errorf("replies to the burst (-want +got):\n%s", diff)
	}
	got := s.Stats().Snapshot()
	if got.KoDRate != 1 || got.DropRate != 5 || got.Replies != 5 {
		t.Errorf("stats %+v", got)
	}
}

// TestServeWildcardSourceAddress: on a wildcard socket the reply comes
// from the address the request was sent to (IP_PKTINFO/IPV6_PKTINFO): a
// connected client socket only accepts a reply from that address.
func TestServeWildcardSourceAddress(t *testing.T) {
	tests := []struct {
		listen string
		dst    []string
	}{
		{"0.0.0.0:0", []string{"127.0.0.1", "127.0.0.5"}},
		{":0", []string{"127.0.0.6", "::1"}},
	}
	for _, tc := range tests {
		t.Run(tc.listen, func(t *testing.T) {
			s := startServer(t, Config{Listen: []string{tc.listen}}, localStratum2(t))
			port := s.Addrs()[0].(*net.UDPAddr).Port
			for _, d := range tc.dst {
				if d == "::1" && !hasIPv6Loopback() {
					continue
				}
				c := dial(t, "", &net.UDPAddr{IP: net.ParseIP(d), Port: port})
				exchange(t, c, mkReq(4, ModeClient, ntpwire.FromTime(time.Now())))
			}
		})
	}
}

func TestServeShutdown(t *testing.T) {
	s, err := New(Config{Listen: []string{"127.0.0.1:0"}}, &AtomicState{}, time.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
}

func TestListenErrors(t *testing.T) {
	if _, err := New(Config{}, nil, time.Now, nil); err == nil {
		t.Error("nil state source accepted")
	}
	if _, err := New(Config{}, &AtomicState{}, nil, nil); !errors.Is(err, ErrNoClock) {
		t.Errorf("nil clock: %v", err)
	}
	s, err := New(Config{}, &AtomicState{}, time.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(context.Background()); !errors.Is(err, ErrNoListen) {
		t.Errorf("no listen: %v", err)
	}
	s, _ = New(Config{Listen: []string{"127.0.0.1:notaport"}}, &AtomicState{}, time.Now, nil)
	if err := s.Listen(context.Background()); err == nil {
		t.Error("bad port accepted")
	}
	if os.Geteuid() != 0 {
		return
	}
}
