package stephook

import (
	"context"
	"syscall"
	"time"
)

// Process is a running process of this network namespace.
type Process struct {
	PID, PPID int
	// Comm is the kernel's name for it (/proc/PID/comm, 15 bytes at most).
	Comm string
	// Argv is its command line; Exe the program file (/proc/PID/exe); Dir
	// its working directory.
	Argv []string
	Exe  string
	Dir  string
	// Env is its environment; read only for the clients a renewer restarts.
	Env []string
}

// system is the operating system as the package uses it. The real one is
// linuxSystem; tests fake it.
type system interface {
	// now reads the wall clock; sleep waits (polling external processes).
	now() time.Time
	sleep(ctx context.Context, d time.Duration) error
	// addrs lists the addresses of every interface of this namespace.
	addrs() ([]Addr, error)
	// setLifetimes changes the lifetimes of an existing address
	// (ip addr change ... valid_lft V preferred_lft P).
	setLifetimes(a Addr, valid, preferred time.Duration) error
	// processes lists the DHCP clients' candidate processes of this
	// network namespace (by name: dhclient, dhcpcd, udhcpc, busybox,
	// systemd-networkd, NetworkManager), with Env for dhclient.
	processes() ([]Process, error)
	alive(pid int) bool
	// awaitExit waits until pid has exited or ctx ends; it returns
	// errors.ErrUnsupported when it cannot watch the process (the caller
	// polls alive).
	awaitExit(ctx context.Context, pid int) error
	signal(pid int, sig syscall.Signal) error
	// dhcpSocket reports whether process pid holds a DHCP client socket
	// (UDP on port 68 or 546, or a packet socket) of this namespace.
	dhcpSocket(pid int) (bool, error)
	readFile(path string) ([]byte, error)
	readDir(dir string) ([]string, error)
	// replaceFile replaces a file's content atomically (temporary file
	// and rename), keeping its mode.
	replaceFile(path string, data []byte) error
	// run runs argv and waits for it (killed when ctx ends), returning its
	// combined output.
	run(ctx context.Context, argv []string) ([]byte, error)
	// spawn starts argv detached from this process (own session, never
	// killed by ntptool) with env and dir, writing its output to a file it
	// returns; exited is closed when it exits.
	spawn(argv, env []string, dir string) (pid int, outFile string, exited <-chan struct{}, err error)
	// networkdRenew asks systemd-networkd over D-Bus to renew a link.
	networkdRenew(ctx context.Context, ifindex int) error
	// nmDevice asks NetworkManager about the device of an interface.
	nmDevice(ctx context.Context, iface string) (nmDevice, error)
	// nmReapply calls Device.Reapply on a NetworkManager device.
	nmReapply(ctx context.Context, device string) error
}

// nmDevice is what NetworkManager says about an interface.
type nmDevice struct {
	// Path is the D-Bus object path of the device.
	Path string
	// DHCP4 and DHCP6 are true when the device has a DHCP configuration.
	DHCP4, DHCP6 bool
}
