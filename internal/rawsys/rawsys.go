// Package rawsys makes the system calls of the daemon's event loop
// without telling the Go scheduler (RawSyscall).
//
// A system call made the usual way (syscall.Syscall, which x/sys uses)
// wakes the runtime's sysmon thread if it sleeps, and sysmon then polls
// every 20 µs until the process is idle again: on an idle daemon, whose
// loop runs for a few hundred microseconds a poll round, that was more
// than half of its wake-ups and a fifth of its CPU time. The scheduler
// needs to know about a call only to hand its P to another thread while
// the call blocks; the calls here never block (non-blocking descriptors,
// MSG_DONTWAIT, a zero timeout, clock_adjtime) and take microseconds.
//
// Never use it for a call that may block: with GOMAXPROCS=1 the whole
// process would wait for it.
package rawsys

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// errno maps a raw call's error number to the error x/sys returns for it.
func errno(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// ClockAdjtime is clock_adjtime(clockid, tx): the kernel clock's state
// returned (TIME_OK, ...), as unix.ClockAdjtime.
func ClockAdjtime(clockid int32, tx *unix.Timex) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_CLOCK_ADJTIME, uintptr(clockid), uintptr(unsafe.Pointer(tx)), 0)
	return int(r), errno(e)
}

// Send sends p on the connected socket fd (send(2), flags as given).
func Send(fd int, p []byte, flags int) (int, error) {
	var base unsafe.Pointer
	if len(p) > 0 {
		base = unsafe.Pointer(&p[0])
	}
	r, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(base), uintptr(len(p)), uintptr(flags), 0, 0)
	return int(r), errno(e)
}

// Recvmsg receives one datagram, or one message of the error queue, from
// the connected socket fd into p, its control messages into oob; without
// the sender's address, which a connected socket knows (x/sys's Recvmsg
// converts it, with a getsockopt for an IPv4 one). Pass MSG_DONTWAIT
// unless fd is non-blocking.
func Recvmsg(fd int, p, oob []byte, flags int) (n, oobn, recvflags int, err error) {
	var iov unix.Iovec
	if len(p) > 0 {
		iov.Base = &p[0]
		iov.SetLen(len(p))
	}
	var msg unix.Msghdr
	msg.Iov = &iov
	msg.SetIovlen(1)
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
	r, _, e := unix.RawSyscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), uintptr(flags))
	if e != 0 {
		return 0, 0, 0, e
	}
	return int(r), int(msg.Controllen), int(msg.Flags), nil
}

// EpollPoll is epoll_wait(epfd, events, 0): the ready events now,
// without waiting.
func EpollPoll(epfd int, events []unix.EpollEvent) (int, error) {
	if len(events) == 0 {
		return 0, unix.EINVAL
	}
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	return int(r), errno(e)
}

// TimerfdSettime is timerfd_settime(fd, flags, spec, nil).
func TimerfdSettime(fd, flags int, spec *unix.ItimerSpec) error {
	_, _, e := unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, uintptr(fd), uintptr(flags), uintptr(unsafe.Pointer(spec)), 0, 0, 0)
	return errno(e)
}

// Read is read(fd, p) on a non-blocking descriptor.
func Read(fd int, p []byte) (int, error) {
	var base unsafe.Pointer
	if len(p) > 0 {
		base = unsafe.Pointer(&p[0])
	}
	r, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(base), uintptr(len(p)))
	return int(r), errno(e)
}
