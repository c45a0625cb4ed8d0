package netio

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ntptool/ntptool/internal/peers"
	"github.com/ntptool/ntptool/ntpclient"
	"github.com/ntptool/ntptool/ntpserve"
	"github.com/ntptool/ntptool/ntpwire"

	"golang.org/x/sys/unix"
)

// startServer runs an in-process ntptool server (ntpserve) answering
// stratum on listen and returns its address.
func startServer(t *testing.T, listen string, stratum uint8) netip.AddrPort {
	t.Helper()
	var st ntpserve.AtomicState
	st.Store(ntpserve.State{Stratum: stratum, RefID: ntpserve.LocalRefID, Precision: -20})
	s, err := ntpserve.New(ntpserve.Config{Listen: []string{listen}, Workers: 1, DisableRateLimit: true}, &st, time.Now, nil)
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
	t.Cleanup(func() { cancel(); <-done })
	return netip.MustParseAddrPort(s.Addrs()[0].String())
}

func newTransport(t *testing.T, opt Options) *Transport {
	t.Helper()
	tr, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// exchange is one request and its reply through the transport.
type exchange struct {
	tx     TxStamp
	rx     Reply
	sample ntpclient.Sample
	t2, t3 time.Time // the server's receive and transmit timestamps
}

func doExchange(t *testing.T, tr *Transport, id int) exchange {
	t.Helper()
	cookie := rand.Uint64() | 1
	pkt := ntpclient.Request(nil, cookie)
	tx, err := tr.Send(id, pkt)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	timeout := time.NewTimer(5 * time.Second) // a failure bound, not a wait
	defer timeout.Stop()
	for {
		select {
		case r, ok := <-tr.Replies():
			if !ok {
				t.Fatal("reply channel closed")
			}
			if r.Source != id {
				t.Fatalf("reply for source %d, want %d", r.Source, id)
			}
			s, err := ntpclient.ParseReply(r.Packet, cookie, tx.Realtime, r.RxRealtime)
			if errors.Is(err, ntpclient.ErrOriginMismatch) {
				continue // a late reply to an earlier request
			}
			if err != nil {
				t.Fatalf("reply: %v", err)
			}
			pivot := r.RxRealtime
			return exchange{tx: tx, rx: r, sample: s,
				t2: ntpwire.Timestamp(binary.BigEndian.Uint64(r.Packet[32:])).Time(pivot),
				t3: ntpwire.Timestamp(binary.BigEndian.Uint64(r.Packet[40:])).Time(pivot)}
		case <-timeout.C:
			t.Fatalf("no reply from source %d", id)
		}
	}
}

// check asserts what any exchange on this machine (client and server read
// one clock) must show: T1 ≤ T2 ≤ T3 ≤ T4 within slack (the server's
// timestamp resolution), the kernel's transmit stamp after the user-space
// reading before the send and its receive stamp before the reading after
// the read, the monotonic conversions ordered, and an offset and delay of
// a loopback path.
func (e exchange) check(t *testing.T, kernel bool, slack time.Duration) {
	t.Helper()
	t1, t4 := e.tx.Realtime, e.rx.RxRealtime
	if e.tx.Kernel != kernel || e.rx.Kernel != kernel {
		t.Errorf("kernel timestamps: transmit %v, receive %v, want %v", e.tx.Kernel, e.rx.Kernel, kernel)
	}
	for _, c := range []struct {
		what string
		a, b time.Time
	}{{"T1 ≤ T2", t1, e.t2}, {"T2 ≤ T3", e.t2, e.t3}, {"T3 ≤ T4", e.t3, t4}} {
		if d := c.b.Sub(c.a); d < -slack {
			t.Errorf("%s violated by %v", c.what, -d)
		}
	}
	if d := t1.Sub(e.tx.UserRealtime); d < 0 || d > 10*time.Millisecond {
		t.Errorf("the transmit stamp is %v after the user-space reading before the send", d)
	}
	if d := e.rx.ReadRealtime.Sub(t4); d < 0 || d > 100*time.Millisecond {
		t.Errorf("the read is %v after the receive stamp", d)
	}
	if e.rx.RxMonotonic() < e.tx.Mono || e.rx.RxMonotonic() > e.rx.ReadMono {
		t.Errorf("monotonic: tx %v, rx %v, read %v", e.tx.Mono, e.rx.RxMonotonic(), e.rx.ReadMono)
	}
	if d := e.sample.DelayS; d < 0 || d > 0.01 {
		t.Errorf("delay %v s on loopback", d)
	}
	// Server and client read the same clock: with the stamps in order the
	// offset is within half the round trip, however long the scheduler
	// kept either side waiting.
	if o, d := e.sample.OffsetS, e.sample.DelayS; math.Abs(o) > d/2+slack.Seconds()+1e-6 {
		t.Errorf("offset %v s against a server on the same clock, beyond half the delay %v s", o, d)
	}
}

// Kernel timestamps both ways against the in-process server, IPv4 and
// IPv6; the kernel's stamps are compared with the user-space readings.
func TestKernelTimestampsAgainstNtpserve(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(listen, func(t *testing.T) {
			addr := startServer(t, listen, 2)
			tr := newTransport(t, Options{})
			if err := tr.Open(7, addr); err != nil {
				t.Fatal(err)
			}
			var txGap, rxGap []time.Duration
			const n = 20
			for range n {
				e := doExchange(t, tr, 7)
				e.check(t, true, time.Microsecond)
				if e.sample.Response.Stratum != 2 {
					t.Errorf("stratum %d", e.sample.Response.Stratum)
				}
				txGap = append(txGap, e.tx.Realtime.Sub(e.tx.UserRealtime))
				rxGap = append(rxGap, e.rx.ReadRealtime.Sub(e.rx.RxRealtime))
			}
			slices.Sort(txGap)
			slices.Sort(rxGap)
			t.Logf("median gaps: kernel transmit stamp − user-space reading before the send %v, user-space reading after the read − kernel receive stamp %v", txGap[n/2], rxGap[n/2])
			if st := tr.Stats(); st.TxKernel != n || st.Replies != n {
				t.Errorf("stats %+v: want %d kernel transmit stamps and replies", st, n)
			}
		})
	}
}

// Without kernel timestamps the user-space readings stand in, and the
// exchange is still ordered.
func TestUserTimestamps(t *testing.T) {
	addr := startServer(t, "127.0.0.1:0", 3)
	tr := newTransport(t, Options{UserTimestamps: true})
	if err := tr.Open(1, addr); err != nil {
		t.Fatal(err)
	}
	e := doExchange(t, tr, 1)
	e.check(t, false, time.Microsecond)
	if !e.tx.Realtime.Equal(e.tx.UserRealtime) || !e.rx.RxRealtime.Equal(e.rx.ReadRealtime) {
		t.Error("the fallback is not the user-space reading")
	}
	if st := tr.Stats(); st.TxUser != 1 || st.TxKernel != 0 {
		t.Errorf("stats %+v", st)
	}
}

// Against real chronyd -x on loopback.
func TestAgainstChronyd(t *testing.T) {
	addr := netip.MustParseAddrPort(peers.StartChronyServer(t))
	tr := newTransport(t, Options{})
	if err := tr.Open(3, addr); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		e := doExchange(t, tr, 3)
		// chronyd fills the bits below its precision with noise.
		slack := time.Duration(float64(time.Second) / float64(uint64(1)<<uint(-int8(e.rx.Packet[3]))))
		e.check(t, true, slack+time.Microsecond)
		if e.sample.Response.Stratum != 2 {
			t.Errorf("chronyd stratum %d", e.sample.Response.Stratum)
		}
	}
}

// A source's socket closes and reopens, to another server; Open on a
// taken id replaces the socket.
func TestRemoveAndReopen(t *testing.T) {
	a := startServer(t, "127.0.0.1:0", 2)
	b := startServer(t, "127.0.0.1:0", 5)
	tr := newTransport(t, Options{})
	if err := tr.Open(1, a); err != nil {
		t.Fatal(err)
	}
	if s := doExchange(t, tr, 1).sample.Response.Stratum; s != 2 {
		t.Fatalf("stratum %d from a", s)
	}
	if err := tr.Remove(1); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Send(1, make([]byte, 48)); !errors.Is(err, ErrUnknownSource) {
		t.Errorf("send on a removed source: %v", err)
	}
	if err := tr.Remove(1); !errors.Is(err, ErrUnknownSource) {
		t.Errorf("second remove: %v", err)
	}
	if err := tr.Open(1, b); err != nil {
		t.Fatal(err)
	}
	if s := doExchange(t, tr, 1).sample.Response.Stratum; s != 5 {
		t.Fatalf("stratum %d from b", s)
	}
	if err := tr.Open(1, a); err != nil { // replaces b
		t.Fatal(err)
	}
	if s := doExchange(t, tr, 1).sample.Response.Stratum; s != 2 {
		t.Fatalf("stratum %d after replacing b by a", s)
	}
}

// Transports come and go without leaving a goroutine behind, and a closed
// one refuses work and closes its channel.
func TestCloseLeaksNothing(t *testing.T) {
	addr := startServer(t, "127.0.0.1:0", 2)
	cycle := func() {
		tr, err := New(Options{})
		if err != nil {
			t.Fatal(err)
		}
		for id := range 3 {
			if err := tr.Open(id, addr); err != nil {
				t.Fatal(err)
			}
		}
		doExchange(t, tr, 2)
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		if err := tr.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, err := tr.Send(0, make([]byte, 48)); !errors.Is(err, ErrClosed) {
			t.Errorf("send after Close: %v", err)
		}
		if err := tr.Open(0, addr); !errors.Is(err, ErrClosed) {
			t.Errorf("open after Close: %v", err)
		}
		for range tr.Replies() { // closed: ends after what was buffered
		}
	}
	for range 10 {
		cycle()
	}
	// The only goroutines this package starts are the epoll loops. One
	// that has closed done may still be returning: give it the CPU a
	// bounded number of times.
	var left int
	for range 1000 {
		if left = transportGoroutines(); left == 0 {
			return
		}
		runtime.Gosched()
	}
	buf := make([]byte, 1<<16)
	t.Errorf("%d epoll loops left after Close:\n%s", left, buf[:runtime.Stack(buf, true)])
}

// transportGoroutines counts the goroutines running a Transport's loop.
func transportGoroutines() int {
	buf := make([]byte, 1<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "netio.(*Transport).loop")
}

func TestOpenRejects(t *testing.T) {
	tr := newTransport(t, Options{})
	for _, a := range []netip.AddrPort{{}, netip.MustParseAddrPort("127.0.0.1:0"), netip.MustParseAddrPort("[fe80::1%nosuchif0]:123")} {
		if err := tr.Open(1, a); err == nil {
			t.Errorf("Open(%v) succeeded", a)
		}
	}
	// An IPv4-mapped address is dialled as IPv4.
	if err := tr.Open(2, netip.MustParseAddrPort("[::ffff:127.0.0.1]:9")); err != nil {
		t.Errorf("IPv4-mapped: %v", err)
	}
}

// A full channel drops replies instead of blocking the epoll loop.
func TestDeliverDropsWhenFull(t *testing.T) {
	tr := newTransport(t, Options{Queue: 2})
	for i := range 5 {
		tr.deliver(Reply{Source: i})
	}
	if st := tr.Stats(); st.Replies != 2 || st.Dropped != 3 {
		t.Errorf("stats %+v, want 2 delivered and 3 dropped", st)
	}
}

func TestRxMonotonic(t *testing.T) {
	r := Reply{RxRealtime: time.Unix(1000, 0), ReadRealtime: time.Unix(1000, 250_000), ReadMono: 5 * time.Second}
	if got, want := r.RxMonotonic(), 5*time.Second-250*time.Microsecond; got != want {
		t.Errorf("RxMonotonic = %v, want %v", got, want)
	}
}

// A transmit stamp that is not there when sendmsg returns reaches Send
// through the epoll loop, which drains the error queue on EPOLLERR.
func TestStampThroughTheEpollLoop(t *testing.T) {
	addr := startServer(t, "127.0.0.1:0", 2)
	tr := newTransport(t, Options{TxWait: 5 * time.Second})
	if err := tr.Open(1, addr); err != nil {
		t.Fatal(err)
	}
	tr.mu.Lock()
	sk := tr.byID[1]
	before, _ := tr.opt.Now()
	// Send behind the transport's back: only the loop reads the queue.
	_, err := unix.SendmsgN(sk.fd, ntpclient.Request(nil, 1), nil, nil, 0)
	tr.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	stamp, ok := tr.waitStamp(sk, before)
	if !ok {
		t.Fatal("no stamp from the epoll loop")
	}
	if d := stamp.Sub(before); d < 0 || d > time.Second {
		t.Errorf("stamp %v after the send began", d)
	}
	// A stamp older than the send is not taken for it.
	sk.stamps <- before.Add(-time.Millisecond)
	tr.opt.TxWait = time.Millisecond
	if _, ok := tr.waitStamp(sk, before); ok {
		t.Error("a stale stamp was taken")
	}
}
