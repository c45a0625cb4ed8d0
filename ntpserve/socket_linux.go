package ntpserve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"github.com/ntptool/ntptool/ntpwire"

	"golang.org/x/sys/unix"
)

// socket is one SO_REUSEPORT UDP socket with kernel receive timestamps.
type socket struct {
	conn *net.UDPConn
	rc   syscall.RawConn
	// pktinfo: the socket is bound to a wildcard address, so replies carry
	// the request's destination address (IP_PKTINFO/IPV6_PKTINFO) as their
	// source, as a multi-homed host's clients expect.
	pktinfo bool
}

func (sk *socket) close() { sk.conn.Close() }

// listenNetwork picks "udp4" for IPv4 literals (0.0.0.0 included: no dual
// stack surprise), "udp6" for IPv6 literals and "udp" (dual stack) for an
// empty host or a name.
func listenNetwork(addr string) (string, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if host == "" {
		return "udp", nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return "udp", nil
	}
	if ip.Is4() {
		return "udp4", nil
	}
	return "udp6", nil
}

func listenSocket(ctx context.Context, addr string, readBuffer int) (*socket, error) {
	network, err := listenNetwork(addr)
	if err != nil {
		return nil, err
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	conn := pc.(*net.UDPConn)
	sk := &socket{conn: conn}
	if sk.rc, err = conn.SyscallConn(); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetReadBuffer(readBuffer) // best effort: capped by rmem_max
	local := conn.LocalAddr().(*net.UDPAddr)
	sk.pktinfo = local.IP.IsUnspecified()
	var serr error
	err = sk.rc.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); serr != nil {
			serr = fmt.Errorf("SO_TIMESTAMPNS: %w", serr)
			return
		}
		if !sk.pktinfo {
			return
		}
		sa, gerr := unix.Getsockname(int(fd))
		if gerr != nil {
			serr = gerr
			return
		}
		if _, v6 := sa.(*unix.SockaddrInet6); v6 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		}
		if serr != nil {
			serr = fmt.Errorf("PKTINFO: %w", serr)
		}
	})
	if err = errors.Join(err, serr); err != nil {
		conn.Close()
		return nil, err
	}
	return sk, nil
}

// Per-message buffer sizes.
const (
	rxBufLen   = 1280 // requests longer than this (NTS cookies are ~100 B) are truncated → dropped
	nameLen    = unix.SizeofSockaddrInet6 + 4
	rxCtlLen   = 128 // SO_TIMESTAMPNS (32) + IPV6_PKTINFO (40)
	txCtlLen   = 40  // one pktinfo control message
	cmsgHdrLen = unix.SizeofCmsghdr
)

// worker owns one socket: it reads batches with recvmmsg, answers them and
// sends the replies with sendmmsg. Every buffer is allocated once.
type worker struct {
	s     *Server
	sk    *socket
	shard *statShard
	batch int

	rbuf  []byte
	names []byte
	rctl  []byte
	riov  []unix.Iovec
	rhdr  []unix.Mmsghdr
	sbuf  []byte
	sctl  []byte
	siov  []unix.Iovec
	shdr  []unix.Mmsghdr
	stamp []bool // reply j gets the transmit timestamp (KoDs do not)

	// results of the last system call, written by readFn/writeFn
	n     int
	errno syscall.Errno
	nsend int
	sent  int

	readFn, writeFn func(fd uintptr) bool
	counts          [numVerdicts]uint32
}

func newWorker(s *Server, sk *socket, shard *statShard) *worker {
	b := s.cfg.Batch
	w := &worker{
		s: s, sk: sk, shard: shard, batch: b,
		rbuf:  make([]byte, b*rxBufLen),
		names: make([]byte, b*nameLen),
		rctl:  make([]byte, b*rxCtlLen),
		riov:  make([]unix.Iovec, b),
		rhdr:  make([]unix.Mmsghdr, b),
		sbuf:  make([]byte, b*HeaderLen),
		sctl:  make([]byte, b*txCtlLen),
		siov:  make([]unix.Iovec, b),
		shdr:  make([]unix.Mmsghdr, b),
		stamp: make([]bool, b),
	}
	for i := range b {
		w.riov[i].Base = &w.rbuf[i*rxBufLen]
		w.riov[i].SetLen(rxBufLen)
		h := &w.rhdr[i].Hdr
		h.Name = &w.names[i*nameLen]
		h.Iov = &w.riov[i]
		h.SetIovlen(1)
		h.Control = &w.rctl[i*rxCtlLen]
		w.siov[i].Base = &w.sbuf[i*HeaderLen]
		w.siov[i].SetLen(HeaderLen)
		w.shdr[i].Hdr.Iov = &w.siov[i]
		w.shdr[i].Hdr.SetIovlen(1)
	}
	w.readFn = w.doRead
	w.writeFn = w.doWrite
	return w
}

func (w *worker) doRead(fd uintptr) bool {
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&w.rhdr[0])), uintptr(w.batch), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait for the poller
		}
		w.n, w.errno = int(n), e
		return true
	}
}

func (w *worker) doWrite(fd uintptr) bool {
	for w.sent < w.nsend {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.shdr[w.sent])), uintptr(w.nsend-w.sent), 0, 0, 0)
		switch e {
		case 0:
			w.sent += int(n)
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			// The first remaining reply was refused (no route to a
			// spoofed address, a firewall): skip it, keep the others.
			w.shard.sendErrors.Add(1)
			w.sent++
		}
	}
	return true
}

// run serves until the socket is closed.
func (w *worker) run() error {
	s := w.s
	for {
		for i := range w.batch {
			h := &w.rhdr[i].Hdr
			h.Namelen = nameLen
			h.SetControllen(rxCtlLen)
			h.Flags = 0
		}
		if err := w.sk.rc.Read(w.readFn); err != nil {
			return err
		}
		if w.errno != 0 {
			// ECONNREFUSED-style errors from earlier sends, ENOMEM: the
			// socket still works.
			continue
		}
		st := s.src.State()
		var fallbackSec, fallbackNsec int64 = -1, 0
		nreply := 0
		for i := range w.n {
			m := &w.rhdr[i]
			pkt := w.rbuf[i*rxBufLen : i*rxBufLen+int(min(m.Len, rxBufLen))]
			from, ok := sockaddrAddr(w.names[i*nameLen:], m.Hdr.Namelen)
			sec, nsec, pi := parseControl(w.rctl[i*rxCtlLen : i*rxCtlLen+int(min(m.Hdr.Controllen, rxCtlLen))])
			if sec < 0 {
				if fallbackSec < 0 {
					t := s.now()
					fallbackSec, fallbackNsec = t.Unix(), int64(t.Nanosecond())
				}
				sec, nsec = fallbackSec, fallbackNsec
			}
			var v Verdict
			var n int
			switch {
			case m.Hdr.Flags&unix.MSG_TRUNC != 0:
				v = DropMalformed
			case !ok:
				v = DropMalformed
			default:
				out := w.sbuf[nreply*HeaderLen : (nreply+1)*HeaderLen]
				n, v = s.handle(out, pkt, from, ntpwire.FromUnix(sec, nsec), sec*1e9+nsec, st)
			}
			w.counts[v]++
			if n == 0 {
				continue
			}
			h := &w.shdr[nreply].Hdr
			h.Name = &w.names[i*nameLen]
			h.Namelen = m.Hdr.Namelen
			if w.sk.pktinfo && len(pi) > 0 {
				ctl := w.sctl[nreply*txCtlLen : nreply*txCtlLen+len(pi)]
				copy(ctl, pi)
				h.Control = &ctl[0]
				h.SetControllen(len(pi))
			} else {
				h.Control = nil
				h.SetControllen(0)
			}
			w.stamp[nreply] = v == Reply
			nreply++
		}
		// Count before sending: a client that has its reply sees it counted.
		w.shard.add(w.n, &w.counts)
		if nreply > 0 {
			w.send(nreply)
		}
		if s.refresher != nil {
			s.refresher.MaybeRefresh(s.now())
		}
	}
}

// send sends the replies in chunks of txChunk, each stamped with a fresh
// transmit timestamp just before its sendmmsg: a stamp is never later than
// the moment its packet is handed to the kernel (no timestamp from the
// future), and at most txChunk-1 other replies go out between the stamp and
// the packet. Smaller chunks mean more accurate stamps and more system
// calls; TestTransmitTimestampAccuracy measures the trade.
func (w *worker) send(nreply int) {
	chunk := w.s.cfg.TxChunk
	for off := 0; off < nreply; off += chunk {
		end := min(off+chunk, nreply)
		t := w.s.now()
		tx := ntpwire.FromUnix(t.Unix(), int64(t.Nanosecond()))
		for j := off; j < end; j++ {
			if w.stamp[j] {
				SetTransmit(w.sbuf[j*HeaderLen:], tx)
			}
		}
		w.sent, w.nsend = off, end
		if err := w.sk.rc.Write(w.writeFn); err != nil {
			return // closed
		}
	}
}

// sockaddrAddr decodes a sockaddr_in or sockaddr_in6 written by the kernel
// into an address (IPv4-mapped addresses unmapped).
func sockaddrAddr(b []byte, n uint32) (netip.Addr, bool) {
	if n < 2 {
		return netip.Addr{}, false
	}
	family := *(*uint16)(unsafe.Pointer(&b[0]))
	switch family {
	case unix.AF_INET:
		if n < unix.SizeofSockaddrInet4 {
			return netip.Addr{}, false
		}
		return netip.AddrFrom4([4]byte(b[4:8])), true
	case unix.AF_INET6:
		if n < unix.SizeofSockaddrInet6 {
			return netip.Addr{}, false
		}
		return netip.AddrFrom16([16]byte(b[8:24])).Unmap(), true
	}
	return netip.Addr{}, false
}

// parseControl walks the control messages of one received packet: the
// SO_TIMESTAMPNS receive time (sec < 0 when absent) and the raw pktinfo
// control message (header included) to send back as the reply's source.
func parseControl(b []byte) (sec, nsec int64, pktinfo []byte) {
	sec = -1
	for len(b) >= cmsgHdrLen {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		l := int(h.Len)
		if l < cmsgHdrLen || l > len(b) {
			break
		}
		data := b[cmsgHdrLen:l]
		switch {
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && len(data) >= 16:
			ts := (*unix.Timespec)(unsafe.Pointer(&data[0]))
			sec, nsec = ts.Sec, ts.Nsec
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO,
			h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO:
			if sp := cmsgSpace(len(data)); sp <= txCtlLen && sp <= len(b) {
				pktinfo = b[:sp]
			}
		}
		sp := cmsgSpace(l - cmsgHdrLen)
		if sp > len(b) {
			break
		}
		b = b[sp:]
	}
	return sec, nsec, pktinfo
}

func cmsgSpace(datalen int) int {
	return cmsgHdrLen + (datalen+7)&^7
}
