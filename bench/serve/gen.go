package main

import (
	"encoding/binary"
	"net"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/ntptool/ntptool/internal/peers"
	"golang.org/x/sys/unix"
)

// The load generator: N connected UDP sockets, each with a sender that
// paces client requests (sendmmsg) and a receiver (recvmmsg) that counts
// the replies whose origin timestamp matches a request it sent in this
// step, once each. Every buffer is allocated once: the generator must not
// be the bottleneck it measures.

const batch = 64

type genSock struct {
	id   uint64
	conn *net.UDPConn
	rc   syscall.RawConn

	sbuf []byte
	siov []unix.Iovec
	shdr []unix.Mmsghdr
	rbuf []byte
	riov []unix.Iovec
	rhdr []unix.Mmsghdr

	// per step
	step  uint64
	sent  uint64
	seen  []uint64 // bitmap of seq numbers answered
	valid uint64
	bad   uint64

	rn              int // readFn results (receiver goroutine)
	rerrno          syscall.Errno
	sn              int // writeFn state (sender goroutine)
	soff            int
	readFn, writeFn func(fd uintptr) bool
}

// id layout in the transmit timestamp: sock(8) | step(16) | seq(40).
func reqID(sock, step, seq uint64) uint64 { return sock<<56 | (step&0xffff)<<40 | seq }

func newGenSock(ns *peers.Netns, id int, target string) (*genSock, error) {
	c, err := ns.Dial("udp4", target)
	if err != nil {
		return nil, err
	}
	conn := c.(*net.UDPConn)
	_ = conn.SetReadBuffer(4 << 20)
	_ = conn.SetWriteBuffer(4 << 20)
	g := &genSock{id: uint64(id), conn: conn,
		sbuf: make([]byte, batch*48), siov: make([]unix.Iovec, batch), shdr: make([]unix.Mmsghdr, batch),
		rbuf: make([]byte, batch*64), riov: make([]unix.Iovec, batch), rhdr: make([]unix.Mmsghdr, batch)}
	if g.rc, err = conn.SyscallConn(); err != nil {
		return nil, err
	}
	for i := range batch {
		b := g.sbuf[i*48 : (i+1)*48]
		b[0] = 4<<3 | 3 // v4 client
		b[2] = 6
		g.siov[i].Base = &b[0]
		g.siov[i].SetLen(48)
		g.shdr[i].Hdr.Iov = &g.siov[i]
		g.shdr[i].Hdr.SetIovlen(1)
		g.riov[i].Base = &g.rbuf[i*64]
		g.riov[i].SetLen(64)
		g.rhdr[i].Hdr.Iov = &g.riov[i]
		g.rhdr[i].Hdr.SetIovlen(1)
	}
	g.readFn = func(fd uintptr) bool {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&g.rhdr[0])), batch, 0, 0, 0)
		if e == unix.EAGAIN {
			return false
		}
		g.rn, g.rerrno = int(n), e
		return true
	}
	g.writeFn = func(fd uintptr) bool {
		for g.soff < g.sn {
			n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&g.shdr[g.soff])), uintptr(g.sn-g.soff), 0, 0, 0)
			switch e {
			case 0:
				g.soff += int(n)
			case unix.EAGAIN:
				return false
			case unix.EINTR:
			default:
				g.soff++ // ECONNREFUSED from an earlier ICMP: skip
			}
		}
		return true
	}
	return g, nil
}

func (g *genSock) reset(step uint64, maxSeq uint64) {
	g.step, g.sent, g.valid, g.bad = step, 0, 0, 0
	words := int(maxSeq/64 + 1)
	if cap(g.seen) < words {
		g.seen = make([]uint64, words)
	}
	g.seen = g.seen[:words]
	clear(g.seen)
}

// send sends n requests (n ≤ batch), blocking while the socket buffer is
// full.
func (g *genSock) send(n int) {
	for i := range n {
		binary.BigEndian.PutUint64(g.sbuf[i*48+40:], reqID(g.id, g.step, g.sent+uint64(i)))
	}
	g.sn, g.soff = n, 0
	_ = g.rc.Write(g.writeFn)
	g.sent += uint64(n)
}

// receive counts replies until the read deadline.
func (g *genSock) receive() {
	for {
		if err := g.rc.Read(g.readFn); err != nil {
			return // deadline
		}
		if g.rerrno != 0 {
			continue
		}
		for i := range g.rn {
			b := g.rbuf[i*64 : i*64+int(min(g.rhdr[i].Len, 64))]
			if len(b) != 48 || b[0]&7 != 4 {
				g.bad++
				continue
			}
			id := binary.BigEndian.Uint64(b[24:])
			seq := id & (1<<40 - 1)
			if id>>56 != g.id || (id>>40)&0xffff != g.step&0xffff || seq >= uint64(len(g.seen))*64 {
				g.bad++
				continue
			}
			w, bit := seq/64, uint64(1)<<(seq%64)
			if g.seen[w]&bit != 0 {
				g.bad++
				continue
			}
			g.seen[w] |= bit
			g.valid++
		}
	}
}

type stepResult struct {
	offered float64 // requests per second asked for
	rate    float64 // requests per second actually sent
	replied float64 // valid replies per second
	sent    uint64
	valid   uint64
	bad     uint64
	loss    float64
	genLag  bool // the generator could not keep up with the offered rate
	cpu     float64
	// datagrams dropped for a full receive buffer during the step
	srvDrops, cliDrops int64
}

// runStep offers rate requests/s for d, spread over the sockets, and counts
// the valid replies that arrive by the end of d + grace.
func runStep(socks []*genSock, step uint64, rate float64, d, grace time.Duration) stepResult {
	per := rate / float64(len(socks))
	maxSeq := uint64(per*d.Seconds()*1.05) + batch
	for _, g := range socks {
		g.reset(step, maxSeq)
	}
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for _, g := range socks {
		_ = g.conn.SetReadDeadline(end.Add(grace))
		wg.Add(2)
		go func() { defer wg.Done(); g.receive() }()
		go func() {
			defer wg.Done()
			// Pace in the runtime's timer ticks (a sleep lasts ~1 ms):
			// the sockets' ticks interleave, so the server sees small
			// bursts. A generator stalled for more than 5 ms skips the
			// backlog (the step is flagged if it sent under 97 % of the
			// offer) rather than sending one burst that would measure
			// the server's socket buffer instead of its throughput.
			maxBacklog := int64(max(per*0.005, 4))
			var skipped int64
			for {
				now := time.Now()
				if !now.Before(end) {
					return
				}
				due := int64(per*now.Sub(start).Seconds()) - int64(g.sent) - skipped
				if due > maxBacklog {
					skipped += due - maxBacklog
					due = maxBacklog
				}
				if due <= 0 {
					time.Sleep(50 * time.Microsecond)
					continue
				}
				g.send(int(min(due, batch)))
			}
		}()
	}
	wg.Wait()
	var r stepResult
	r.offered = rate
	for _, g := range socks {
		r.sent += g.sent
		r.valid += g.valid
		r.bad += g.bad
	}
	r.rate = float64(r.sent) / d.Seconds()
	r.replied = float64(r.valid) / d.Seconds()
	if r.sent > 0 {
		r.loss = 1 - float64(r.valid)/float64(r.sent)
	}
	r.genLag = r.rate < 0.95*rate
	return r
}
