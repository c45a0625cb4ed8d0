package netio

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ntptool/ntptool/clock"
	"github.com/ntptool/ntptool/internal/rawsys"

	"golang.org/x/sys/unix"
)

// Options configures a Transport. The zero value is ready to use; every
// field states its default.
type Options struct {
	// Now reads the realtime and monotonic clocks together. Default
	// clock.Linux{}.Now (CLOCK_REALTIME and CLOCK_MONOTONIC, the clocks of
	// the kernel's timestamps and of Go's timers).
	Now func() (time.Time, time.Duration)
	// Queue is the capacity of the reply channel; a reply that finds it
	// full is dropped and counted. Default 64.
	Queue int
	// TxWait bounds how long Send waits for the kernel's transmit
	// timestamp once the packet is sent; on loopback and most drivers it
	// is there when sendmsg returns. Default 2 ms.
	TxWait time.Duration
	// UserTimestamps turns the kernel's timestamps off (both directions):
	// for kernels without them and for comparisons. Default false.
	UserTimestamps bool
}

// TxStamp is when a request left.
type TxStamp struct {
	// Realtime is the transmit time: the kernel's software timestamp when
	// Kernel is set, else UserRealtime.
	Realtime time.Time
	// Mono is Realtime on the monotonic clock (converted with the
	// user-space reading).
	Mono time.Duration
	// Kernel says Realtime is the kernel's timestamp.
	Kernel bool
	// UserRealtime and UserMono are the user-space reading taken just
	// before sendmsg: the fallback. Before, not after: on loopback
	// sendmsg returns after the server has the packet, and a late T1
	// shortens the delay and biases the offset by half the lateness
	// (chrony reads before too).
	UserRealtime time.Time
	UserMono     time.Duration
}

// Reply is one packet received from a source.
type Reply struct {
	// Source is the source's id, as given to Open.
	Source int
	// Packet is the datagram; the receiver owns it.
	Packet []byte
	// RxRealtime is the receive time: the kernel's timestamp when Kernel
	// is set, else ReadRealtime.
	RxRealtime time.Time
	// Kernel says RxRealtime is the kernel's timestamp.
	Kernel bool
	// ReadRealtime and ReadMono are read together just after the packet
	// was read from the socket.
	ReadRealtime time.Time
	ReadMono     time.Duration
}

// RxMonotonic is RxRealtime on the monotonic clock: the read's monotonic
// reading less the time from the kernel's timestamp to the read. (A clock
// step between the two would show here; it takes microseconds.)
func (r Reply) RxMonotonic() time.Duration {
	return r.ReadMono - r.ReadRealtime.Sub(r.RxRealtime)
}

// Stats counts what the transport did. Read it with Transport.Stats.
type Stats struct {
	// Replies delivered, and Dropped because the channel was full.
	Replies, Dropped uint64
	// Truncated replies (longer than the buffer) were dropped.
	Truncated uint64
	// RecvErrors are errors reading a socket (ICMP port unreachable comes
	// back as ECONNREFUSED).
	RecvErrors uint64
	// TxKernel sends got the kernel's timestamp; TxUser fell back to
	// user space (TxLate of them because none came within TxWait).
	TxKernel, TxUser, TxLate uint64
}

// Errors of Open and Send.
var (
	// ErrClosed: the transport is closed.
	ErrClosed = errors.New("netio: transport closed")
	// ErrUnknownSource: no socket is open for that source id.
	ErrUnknownSource = errors.New("netio: no socket for this source")
)

// Defaults and sizes.
const (
	defaultQueue  = 64
	defaultTxWait = 2 * time.Millisecond
	rxBufLen      = 1024 // a reply to a 48-byte request is 48 bytes
	readBatch     = 64   // reads per socket per wake-up, for fairness
	wakeToken     = 0    // the epoll token of the wake-up eventfd
	maxMisses     = 3    // sends without a kernel TX stamp before giving up on them
	txFlags       = unix.SOF_TIMESTAMPING_TX_SOFTWARE | unix.SOF_TIMESTAMPING_SOFTWARE |
		unix.SOF_TIMESTAMPING_OPT_TSONLY | unix.SOF_TIMESTAMPING_OPT_ID
)

// Transport owns the sockets of the sources. Open, Remove, Send and Close
// are safe for concurrent use; the daemon's loop is meant to be their
// only caller.
type Transport struct {
	opt     Options
	epfd    int
	epf     *os.File        // epfd, for the runtime's poller; nil if not pollable
	raw     syscall.RawConn // epf's
	wakefd  int
	replies chan Reply
	done    chan struct{}

	mu      sync.Mutex
	byID    map[int]*socket
	byToken map[int32]*socket
	token   int32
	closing bool

	replyN, dropped, truncated, recvErrors atomic.Uint64
	txKernel, txUser, txLate               atomic.Uint64
}

// socket is one source's connected UDP socket.
type socket struct {
	id       int
	token    int32
	fd       int
	peer     netip.AddrPort
	kernelTx bool
	misses   int // consecutive sends without a kernel timestamp
	// stamps carries transmit timestamps the epoll loop read from the
	// error queue to a Send waiting for one.
	stamps chan time.Time
	closed chan struct{}
}

// New starts a transport with no sockets.
func New(opt Options) (*Transport, error) {
	if opt.Now == nil {
		opt.Now = clock.Linux{}.Now
	}
	if opt.Queue <= 0 {
		opt.Queue = defaultQueue
	}
	if opt.TxWait <= 0 {
		opt.TxWait = defaultTxWait
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeToken}); err != nil {
		unix.Close(wakefd)
		unix.Close(epfd)
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	t := &Transport{
		opt: opt, epfd: epfd, wakefd: wakefd,
		replies: make(chan Reply, opt.Queue),
		done:    make(chan struct{}),
		byID:    map[int]*socket{},
		byToken: map[int32]*socket{},
	}
	// A non-blocking descriptor is registered with the runtime's poller
	// by os.NewFile; the file then owns (and closes) epfd.
	if err := unix.SetNonblock(epfd, true); err == nil {
		t.epf = os.NewFile(uintptr(epfd), "epoll")
		if raw, err := t.epf.SyscallConn(); err == nil {
			t.raw = raw
		}
	}
	go t.loop()
	return t, nil
}

// Replies is the channel replies arrive on. It is closed by Close.
func (t *Transport) Replies() <-chan Reply { return t.replies }

// Stats returns the counters.
func (t *Transport) Stats() Stats {
	return Stats{
		Replies: t.replyN.Load(), Dropped: t.dropped.Load(), Truncated: t.truncated.Load(),
		RecvErrors: t.recvErrors.Load(),
		TxKernel:   t.txKernel.Load(), TxUser: t.txUser.Load(), TxLate: t.txLate.Load(),
	}
}

// Open opens a connected UDP socket to addr for source id, replacing the
// socket id had. An IPv4-mapped address is dialled as IPv4; an IPv6
// address's zone names the interface (link-local servers).
func (t *Transport) Open(id int, addr netip.AddrPort) error {
	sa, family, err := sockaddr(addr)
	if err != nil {
		return fmt.Errorf("open %v: %w", addr, err)
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return fmt.Errorf("open %v: socket: %w", addr, err)
	}
	sk := &socket{id: id, fd: fd, peer: addr, stamps: make(chan time.Time, 4), closed: make(chan struct{})}
	if !t.opt.UserTimestamps {
		// Both are best effort: without them the user-space readings
		// stand in.
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
		sk.kernelTx = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPING, txFlags) == nil
	}
	if err := unix.Connect(fd, sa); err != nil {
		unix.Close(fd)
		return fmt.Errorf("open %v: connect: %w", addr, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing {
		unix.Close(fd)
		return ErrClosed
	}
	t.token++
	if t.token <= wakeToken {
		t.token = wakeToken + 1 // after 2^31 opens
	}
	sk.token = t.token
	if err := unix.EpollCtl(t.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: sk.token}); err != nil {
		unix.Close(fd)
		return fmt.Errorf("open %v: epoll_ctl: %w", addr, err)
	}
	if old := t.byID[id]; old != nil {
		t.removeLocked(old)
	}
	t.byID[id] = sk
	t.byToken[sk.token] = sk
	return nil
}

// sockaddr converts addr for connect(2).
func sockaddr(addr netip.AddrPort) (unix.Sockaddr, int, error) {
	ip := addr.Addr().Unmap()
	switch {
	case !addr.IsValid() || addr.Port() == 0:
		return nil, 0, errors.New("want an address and a port")
	case ip.Is4():
		return &unix.SockaddrInet4{Port: int(addr.Port()), Addr: ip.As4()}, unix.AF_INET, nil
	}
	sa := &unix.SockaddrInet6{Port: int(addr.Port()), Addr: ip.As16()}
	if zone := ip.Zone(); zone != "" {
		if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
			sa.ZoneId = uint32(n)
		} else {
			ifi, err := net.InterfaceByName(zone)
			if err != nil {
				return nil, 0, fmt.Errorf("zone %q: %w", zone, err)
			}
			sa.ZoneId = uint32(ifi.Index)
		}
	}
	return sa, unix.AF_INET6, nil
}

// Remove closes source id's socket; a Send waiting on it returns.
func (t *Transport) Remove(id int) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	sk := t.byID[id]
	if sk == nil {
		return ErrUnknownSource
	}
	t.removeLocked(sk)
	return nil
}

// removeLocked closes a socket. The epoll loop looks sockets up by token
// under the same lock, so it never reads a closed (or reused) descriptor.
func (t *Transport) removeLocked(sk *socket) {
	_ = unix.EpollCtl(t.epfd, unix.EPOLL_CTL_DEL, sk.fd, nil)
	unix.Close(sk.fd)
	close(sk.closed)
	if t.byID[sk.id] == sk {
		delete(t.byID, sk.id)
	}
	delete(t.byToken, sk.token)
}

// isClosed reports whether Remove or Close closed the socket.
func (sk *socket) isClosed() bool {
	select {
	case <-sk.closed:
		return true
	default:
		return false
	}
}

// Send sends pkt to source id and, after the send, returns when it left:
// the kernel's transmit timestamp when it comes within TxWait, else the
// user-space reading taken just before sendmsg. Send does not keep pkt.
func (t *Transport) Send(id int, pkt []byte) (TxStamp, error) {
	t.mu.Lock()
	if t.closing {
		t.mu.Unlock()
		return TxStamp{}, ErrClosed
	}
	sk := t.byID[id]
	if sk == nil {
		t.mu.Unlock()
		return TxStamp{}, ErrUnknownSource
	}
	// Stamps of earlier sends (late ones) must not be taken for this one.
	for len(sk.stamps) > 0 {
		<-sk.stamps
	}
	var st TxStamp
	st.UserRealtime, st.UserMono = t.opt.Now()
	st.Realtime, st.Mono = st.UserRealtime, st.UserMono
	before := st.UserRealtime
	var err error
	for {
		if _, err = rawsys.Send(sk.fd, pkt, unix.MSG_DONTWAIT); err != unix.EINTR {
			break
		}
	}
	if err != nil {
		t.mu.Unlock()
		return st, fmt.Errorf("send to %v: %w", sk.peer, err)
	}
	if !sk.kernelTx {
		t.mu.Unlock()
		t.txUser.Add(1)
		return st, nil
	}
	// On loopback and most drivers the stamp is queued before sendmsg
	// returns: read it here, without waking the epoll loop's reader.
	stamp, ok := t.readErrQueue(sk, before)
	t.mu.Unlock()
	if !ok {
		stamp, ok = t.waitStamp(sk, before)
	}
	t.mu.Lock()
	if ok {
		sk.misses = 0
	} else if sk.misses++; sk.misses >= maxMisses {
		// This path (a driver that does not call skb_tx_timestamp)
		// gives none: stop waiting for them on every send.
		sk.kernelTx = false
		if !sk.isClosed() {
			_ = unix.SetsockoptInt(sk.fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPING, 0)
		}
	}
	t.mu.Unlock()
	if !ok {
		t.txUser.Add(1)
		return st, nil
	}
	t.txKernel.Add(1)
	st.Realtime, st.Kernel = stamp, true
	st.Mono = st.UserMono + stamp.Sub(st.UserRealtime)
	return st, nil
}

// plausible reports whether a transmit timestamp belongs to a send begun
// at before: a stamp from an earlier send (one that came too late for its
// Send) is older.
func plausible(stamp, before time.Time) bool { return !stamp.Before(before) }

// waitStamp waits up to TxWait for the epoll loop to pass on a stamp.
func (t *Transport) waitStamp(sk *socket, before time.Time) (time.Time, bool) {
	timer := time.NewTimer(t.opt.TxWait)
	defer timer.Stop()
	for {
		select {
		case stamp := <-sk.stamps:
			if plausible(stamp, before) {
				return stamp, true
			}
		case <-timer.C:
			t.txLate.Add(1)
			return time.Time{}, false
		case <-sk.closed:
			return time.Time{}, false
		}
	}
}

// readErrQueue drains sk's error queue (the caller holds t.mu) and
// returns the newest plausible transmit timestamp for a send begun at
// before; with before zero (the epoll loop) every stamp found is passed
// to a waiting Send instead.
func (t *Transport) readErrQueue(sk *socket, before time.Time) (time.Time, bool) {
	var oob [controlBufLen]byte
	var payload [64]byte // with OPT_TSONLY no payload comes back
	var found time.Time
	ok := false
	for range readBatch {
		_, oobn, _, err := rawsys.Recvmsg(sk.fd, payload[:], oob[:], unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			break // EAGAIN: empty
		}
		stamp, _, isStamp := txTimestamp(oob[:oobn])
		if !isStamp {
			continue
		}
		if before.IsZero() {
			select {
			case sk.stamps <- stamp:
			default: // nobody is waiting for this many
			}
			continue
		}
		if plausible(stamp, before) {
			found, ok = stamp, true
		}
	}
	return found, ok
}

// Close stops the epoll loop, closes every socket and the reply channel,
// and returns once the loop's goroutine has exited.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closing {
		t.mu.Unlock()
		<-t.done
		return nil
	}
	t.closing = true
	t.mu.Unlock()
	var one [8]byte
	one[0] = 1
	if _, err := unix.Write(t.wakefd, one[:]); err != nil {
		return fmt.Errorf("wake the epoll loop: %w", err)
	}
	<-t.done
	return nil
}

// loop is the epoll loop: it reads every socket and the error queues.
//
// It waits in the runtime's poller, not in a blocking epoll_wait: the
// epoll descriptor is itself pollable (readable while a socket in its set
// is ready), so the loop's goroutine parks like any network read and no
// thread sits in a system call holding a P. A P held in a system call
// keeps the runtime's sysmon thread polling (every 20 µs at first, then
// backing off to 10 ms) until it retakes the P, some 40 wake-ups per
// reply on an idle daemon; parked, the process sleeps until the next
// packet or timer. If the poller cannot take the descriptor, the loop
// falls back to a blocking epoll_wait.
func (t *Transport) loop() {
	defer t.shutdown()
	events := make([]unix.EpollEvent, 32)
	buf := make([]byte, rxBufLen)
	var oob [controlBufLen]byte
	if t.raw != nil {
		done := false
		err := t.raw.Read(func(fd uintptr) bool {
			for {
				n, err := rawsys.EpollPoll(int(fd), events)
				switch {
				case err == unix.EINTR:
					continue
				case err != nil:
					done = true // EBADF/EINVAL: cannot happen while the transport is open
					return true
				case n == 0:
					return false // park until the set is ready
				}
				if !t.handle(events[:n], buf, oob[:]) {
					done = true
					return true
				}
			}
		})
		if done || err == nil {
			return
		}
		// Not pollable after all: wait in the kernel instead.
	}
	for {
		n, err := unix.EpollWait(t.epfd, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return // EBADF/EINVAL: cannot happen while the transport is open
		}
		if !t.handle(events[:n], buf, oob[:]) {
			return
		}
	}
}

// handle reads the sockets epoll found ready; it reports false once the
// transport is closing.
func (t *Transport) handle(events []unix.EpollEvent, buf, oob []byte) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing {
		return false
	}
	for _, ev := range events {
		if ev.Fd == wakeToken {
			continue
		}
		sk := t.byToken[ev.Fd]
		if sk == nil {
			continue // removed after epoll_wait returned
		}
		if ev.Events&unix.EPOLLERR != 0 {
			// Always drained: a level-triggered EPOLLERR stays up
			// while anything is queued.
			t.readErrQueue(sk, time.Time{})
		}
		t.readReplies(sk, buf, oob)
	}
	return true
}

// readReplies reads sk's pending datagrams (the caller holds t.mu).
func (t *Transport) readReplies(sk *socket, buf, oob []byte) {
	for range readBatch {
		n, oobn, flags, err := rawsys.Recvmsg(sk.fd, buf, oob, unix.MSG_DONTWAIT)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return
		case err != nil:
			// ECONNREFUSED (ICMP port unreachable) and the like: the
			// socket still works; the source's reach register shows it.
			t.recvErrors.Add(1)
			continue
		case flags&unix.MSG_TRUNC != 0:
			t.truncated.Add(1)
			continue
		}
		r := Reply{Source: sk.id, Packet: append([]byte(nil), buf[:n]...)}
		r.ReadRealtime, r.ReadMono = t.opt.Now()
		r.RxRealtime, r.Kernel = rxTimestamp(oob[:oobn])
		if !r.Kernel {
			r.RxRealtime = r.ReadRealtime
		}
		t.deliver(r)
	}
}

// deliver hands a reply to the channel without ever blocking the loop.
func (t *Transport) deliver(r Reply) {
	t.replyN.Add(1) // first, so a receiver never sees a reply uncounted
	select {
	case t.replies <- r:
	default:
		t.replyN.Add(^uint64(0))
		t.dropped.Add(1)
	}
}

// shutdown closes everything once the loop has stopped.
func (t *Transport) shutdown() {
	t.mu.Lock()
	t.closing = true
	for _, sk := range t.byToken {
		t.removeLocked(sk)
	}
	t.mu.Unlock()
	unix.Close(t.wakefd)
	if t.epf != nil {
		t.epf.Close()
	} else {
		unix.Close(t.epfd)
	}
	close(t.replies)
	close(t.done)
}
