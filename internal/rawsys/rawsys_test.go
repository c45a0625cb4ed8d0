package rawsys

import (
	"bytes"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// udpPair is two UDP sockets on 127.0.0.1 connected to each other,
// non-blocking, closed when the test ends.
func udpPair(t *testing.T) (a, b int) {
	t.Helper()
	open := func() int {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Fatal(err)
		}
		return fd
	}
	a, b = open(), open()
	for _, p := range [][2]int{{a, b}, {b, a}} {
		sa, err := unix.Getsockname(p[1])
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Connect(p[0], sa); err != nil {
			t.Fatal(err)
		}
	}
	return a, b
}

// wait polls epfd until it reports an event or a second passed.
func wait(t *testing.T, epfd int, events []unix.EpollEvent) int {
	t.Helper()
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		n, err := EpollPoll(epfd, events)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return n
		}
	}
	return 0
}

func TestSendRecvmsgEpoll(t *testing.T) {
	a, b := udpPair(t)
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(epfd)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, b, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: 7}); err != nil {
		t.Fatal(err)
	}
	if err := unix.SetsockoptInt(b, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		t.Fatal(err)
	}
	events := make([]unix.EpollEvent, 4)
	if n, err := EpollPoll(epfd, events); n != 0 || err != nil {
		t.Fatalf("EpollPoll on an empty socket = %d, %v; want 0, nil", n, err)
	}
	if _, err := EpollPoll(epfd, nil); err != unix.EINVAL {
		t.Errorf("EpollPoll without room for events: %v, want EINVAL", err)
	}
	buf, oob := make([]byte, 64), make([]byte, 128)
	if _, _, _, err := Recvmsg(b, buf, oob, unix.MSG_DONTWAIT); err != unix.EAGAIN {
		t.Fatalf("Recvmsg on an empty socket: %v, want EAGAIN", err)
	}
	msg := []byte("ntptool raw")
	if n, err := Send(a, msg, unix.MSG_DONTWAIT); n != len(msg) || err != nil {
		t.Fatalf("Send = %d, %v", n, err)
	}
	if n := wait(t, epfd, events); n != 1 || events[0].Fd != 7 || events[0].Events&unix.EPOLLIN == 0 {
		t.Fatalf("EpollPoll after a send = %d, %+v; want the socket readable", n, events[0])
	}
	n, oobn, flags, err := Recvmsg(b, buf, oob, unix.MSG_DONTWAIT)
	if err != nil || !bytes.Equal(buf[:n], msg) || flags&unix.MSG_TRUNC != 0 {
		t.Fatalf("Recvmsg = %q, flags %#x, %v; want %q", buf[:n], flags, err, msg)
	}
	cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(cmsgs) != 1 || cmsgs[0].Header.Type != unix.SO_TIMESTAMPNS {
		t.Errorf("control messages %+v, %v; want one SO_TIMESTAMPNS", cmsgs, err)
	}
	// A datagram longer than the buffer is cut, and says so.
	if _, err := Send(a, bytes.Repeat([]byte{1}, 100), unix.MSG_DONTWAIT); err != nil {
		t.Fatal(err)
	}
	wait(t, epfd, events)
	if n, _, flags, err := Recvmsg(b, buf, nil, unix.MSG_DONTWAIT); err != nil || n != len(buf) || flags&unix.MSG_TRUNC == 0 {
		t.Errorf("Recvmsg of 100 bytes into 64 = %d, flags %#x, %v; want 64, MSG_TRUNC", n, flags, err)
	}
	if _, err := Send(-1, msg, 0); err != unix.EBADF {
		t.Errorf("Send on fd -1: %v, want EBADF", err)
	}
}

func TestTimerfdRead(t *testing.T) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 8)
	if _, err := Read(fd, buf); err != unix.EAGAIN {
		t.Fatalf("Read of an unarmed timerfd: %v, want EAGAIN", err)
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(time.Millisecond))}
	if err := TimerfdSettime(fd, 0, &spec); err != nil {
		t.Fatal(err)
	}
	var cur unix.ItimerSpec
	if err := unix.TimerfdGettime(fd, &cur); err != nil || cur.Value.Nano() <= 0 {
		t.Fatalf("armed for 1 ms: %+v, %v", cur, err)
	}
	time.Sleep(20 * time.Millisecond)
	if n, err := Read(fd, buf); n != 8 || err != nil || buf[0] != 1 {
		t.Fatalf("Read after the expiry = %d %v, %v; want 8 bytes counting 1", n, buf, err)
	}
	if err := TimerfdSettime(fd, unix.TFD_TIMER_ABSTIME, &unix.ItimerSpec{}); err != nil {
		t.Errorf("disarm: %v", err)
	}
	if err := TimerfdSettime(-1, 0, &spec); err != unix.EBADF {
		t.Errorf("TimerfdSettime on fd -1: %v, want EBADF", err)
	}
}

// ClockAdjtime with modes 0 only reads (the host's clock is never
// changed by a test): it must agree with x/sys's call.
func TestClockAdjtimeReads(t *testing.T) {
	var raw, xs unix.Timex
	state, err := ClockAdjtime(unix.CLOCK_REALTIME, &raw)
	if err != nil {
		t.Fatal(err)
	}
	xstate, err := unix.ClockAdjtime(unix.CLOCK_REALTIME, &xs)
	if err != nil {
		t.Fatal(err)
	}
	if state != xstate || raw.Freq != xs.Freq || raw.Tick != xs.Tick || raw.Status != xs.Status {
		t.Errorf("raw read: state %d freq %d tick %d status %#x; x/sys: %d %d %d %#x", state, raw.Freq, raw.Tick, raw.Status, xstate, xs.Freq, xs.Tick, xs.Status)
	}
	var zero unix.Timex // modes 0: a read even if the id were valid
	if _, err := ClockAdjtime(1000, &zero); err != unix.EINVAL {
		t.Errorf("clock id 1000: %v, want EINVAL", err)
	}
}
