package hookproxy

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"kernel.org/pub/linux/libs/security/libcap/cap"
)

// HelperFD is the helper's end of the socketpair (the first of
// exec.Cmd.ExtraFiles).
const HelperFD = 3

// Main is the helper process's body, which the hidden command of the
// ntptool binary calls: it gives up CAP_SYS_TIME (bounding set included,
// so that no hook regains it), ignores the signals meant for the daemon
// (a terminal's ^C, systemd's SIGTERM to the whole unit: the helper ends
// when the daemon closes the socket, after the event in progress), and
// serves the socket on HelperFD.
func Main(log *slog.Logger) error {
	if err := dropClock(); err != nil {
		return err
	}
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP, syscall.SIGTERM)
	f := os.NewFile(HelperFD, "hookproxy")
	if f == nil {
		return fmt.Errorf("%w: no socket on fd %d (the daemon starts this command)", ErrHelper, HelperFD)
	}
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%w: fd %d is not the daemon's socket: %v", ErrHelper, HelperFD, err)
	}
	defer conn.Close()
	return Serve(conn, ServeOptions{Logger: log})
}

// dropClock removes CAP_SYS_TIME from every capability set of the process
// (all threads: libcap's psx).
func dropClock() error {
	if in, err := cap.GetBound(cap.SYS_TIME); err == nil && in {
		if err := cap.DropBound(cap.SYS_TIME); err != nil {
			return fmt.Errorf("%w: drop cap_sys_time from the bounding set: %v", ErrHelper, err)
		}
	}
	c := cap.GetProc()
	for _, f := range []cap.Flag{cap.Effective, cap.Permitted, cap.Inheritable} {
		if err := c.SetFlag(f, false, cap.SYS_TIME); err != nil {
			return fmt.Errorf("%w: %v", ErrHelper, err)
		}
	}
	if err := c.SetProc(); err != nil {
		return fmt.Errorf("%w: drop cap_sys_time: %v", ErrHelper, err)
	}
	return nil
}
