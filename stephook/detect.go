package stephook

import (
	"context"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ClientKind names a DHCP client, as the configuration's renewers do.
type ClientKind string

// The DHCP clients stephook knows.
const (
	DHClient       ClientKind = "dhclient"
	DHCPCD         ClientKind = "dhcpcd"
	UDHCPC         ClientKind = "udhcpc"
	Networkd       ClientKind = "networkd"
	NetworkManager ClientKind = "networkmanager"
)

// Kinds lists every client kind, in the order renewers are reported.
var Kinds = []ClientKind{DHClient, DHCPCD, UDHCPC, Networkd, NetworkManager}

// client is one running DHCP client instance found on this host.
type client struct {
	kind ClientKind
	proc Process
	// ifaces are the interfaces it manages; empty: every interface (a
	// dhclient or dhcpcd started without one), narrowed by lease files.
	ifaces []string
	// family is 4, 6, or 0 for both.
	family int
	// pidFile and leaseFile, where known.
	pidFile, leaseFile string
	// backend is NetworkManager's DHCP client ("internal" or "dhclient").
	backend string
	// dhclient: the parsed command line.
	dh *dhclientArgs
}

func (c *client) manages(iface string, family int) bool {
	return (len(c.ifaces) == 0 || slices.Contains(c.ifaces, iface)) && (c.family == 0 || c.family == family)
}

// name is how reports call the instance: "dhclient[1234]".
func (c *client) name() string {
	if c.proc.PID == 0 {
		return string(c.kind)
	}
	return string(c.kind) + "[" + strconv.Itoa(c.proc.PID) + "]"
}

// dhclientArgs is what stephook needs from a dhclient command line.
type dhclientArgs struct {
	v6              bool
	foreground      bool // -d
	pidFile, lfFile string
	ifaces          []string
}

// dhclient options that take a value (dhclient(8)); everything else that
// starts with "-" is a flag, and other words are interfaces.
var dhclientValued = map[string]bool{
	"-pf": true, "-lf": true, "-cf": true, "-sf": true, "-s": true, "-g": true, "-e": true,
	"-p": true, "-D": true, "-H": true, "-F": true, "-V": true, "--prefix-len-hint": true,
	"--decline-wait-time": true, "--address-prefix-len": true, "--dad-wait-time": true,
	"-timeout": true, "-B": true, "-C": true,
}

func parseDHClient(argv []string) *dhclientArgs {
	a := &dhclientArgs{}
	for i := 1; i < len(argv); i++ {
		w := argv[i]
		switch {
		case w == "-6":
			a.v6 = true
		case w == "-4":
			a.v6 = false
		case w == "-d":
			a.foreground = true
		case (w == "-pf" || w == "-lf") && i+1 < len(argv):
			if w == "-pf" {
				a.pidFile = argv[i+1]
			} else {
				a.lfFile = argv[i+1]
			}
			i++
		case dhclientValued[w]:
			i++
		case strings.HasPrefix(w, "-"):
		default:
			a.ifaces = append(a.ifaces, w)
		}
	}
	// Debian's defaults (dhclient(8) FILES).
	if a.lfFile == "" {
		a.lfFile = "/var/lib/dhcp/dhclient.leases"
		if a.v6 {
			a.lfFile = "/var/lib/dhcp/dhclient6.leases"
		}
	}
	if a.pidFile == "" {
		a.pidFile = "/run/dhclient.pid"
		if a.v6 {
			a.pidFile = "/run/dhclient6.pid"
		}
	}
	return a
}

// udhcpcIface reads -i IFACE / -iIFACE / --interface IFACE / --interface=IFACE
// and -p/--pidfile from a udhcpc command line ("busybox udhcpc ..." too);
// busybox's default interface is eth0.
func udhcpcArgs(argv []string) (iface, pidFile string) {
	iface = "eth0"
	for i := 1; i < len(argv); i++ {
		w := argv[i]
		val := func(short, long string) (string, bool) {
			switch {
			case w == short || w == long:
				if i+1 < len(argv) {
					i++
					return argv[i], true
				}
			case strings.HasPrefix(w, long+"="):
				return w[len(long)+1:], true
			case strings.HasPrefix(w, short) && len(w) > len(short) && !strings.HasPrefix(w, "--"):
				return w[len(short):], true
			}
			return "", false
		}
		if v, ok := val("-i", "--interface"); ok {
			iface = v
		} else if v, ok := val("-p", "--pidfile"); ok {
			pidFile = v
		}
	}
	return iface, pidFile
}

// Paths the detection reads.
const (
	dhcpcdRunDir   = "/run/dhcpcd"
	dhcpcdLeaseDir = "/var/lib/dhcpcd"
	networkdLeases = "/run/systemd/netif/leases"
	nmLeaseDir     = "/var/lib/NetworkManager"
)

// detect finds the DHCP clients of this network namespace: from running
// processes (only this namespace's), pid files, lease files and D-Bus.
func detect(ctx context.Context, s system, addrs []Addr) ([]*client, error) {
	procs, err := s.processes()
	if err != nil {
		return nil, err
	}
	byPID := map[int]Process{}
	for _, p := range procs {
		byPID[p.PID] = p
	}
	var nmPID int
	for _, p := range procs {
		if p.Comm == "NetworkManager" {
			nmPID = p.PID
		}
	}
	var out []*client
	dhcpcdSeen := map[int]bool{}
	// dhcpcd: the pid files name the daemon and what it was started for
	// (IFACE.pid both families, IFACE-4.pid, IFACE-6.pid, "pid" manager
	// mode); its privilege-separated helpers share its name and are skipped.
	if names, err := s.readDir(dhcpcdRunDir); err == nil {
		for _, n := range names {
			if !strings.HasSuffix(n, ".pid") && n != "pid" {
				continue
			}
			b, err := s.readFile(filepath.Join(dhcpcdRunDir, n))
			if err != nil {
				continue
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			p, ok := byPID[pid]
			if err != nil || !ok || p.Comm != "dhcpcd" || byPID[p.PPID].Comm == "dhcpcd" {
				// Stale, of another namespace, or a stale file's PID
				// reused by one of a daemon's helpers.
				continue
			}
			c := &client{kind: DHCPCD, proc: p, pidFile: filepath.Join(dhcpcdRunDir, n)}
			if n != "pid" {
				base := strings.TrimSuffix(n, ".pid")
				switch {
				case strings.HasSuffix(base, "-4"):
					c.family, base = 4, strings.TrimSuffix(base, "-4")
				case strings.HasSuffix(base, "-6"):
					c.family, base = 6, strings.TrimSuffix(base, "-6")
				}
				if title := dhcpcdTitleIfaces(p.Argv); len(title) > 0 && !slices.Contains(title, base) {
					continue // a stale file's PID reused by another dhcpcd
				}
				c.ifaces = []string{base}
				c.leaseFile = filepath.Join(dhcpcdLeaseDir, base+".lease")
			}
			dhcpcdSeen[pid] = true
			out = append(out, c)
		}
	}
	for _, p := range procs {
		switch p.Comm {
		case "dhclient":
			a := parseDHClient(p.Argv)
			c := &client{kind: DHClient, proc: p, ifaces: a.ifaces, family: 4, pidFile: a.pidFile, leaseFile: a.lfFile, dh: a}
			if a.v6 {
				c.family = 6
			}
			// NetworkManager's dhclient backend: NetworkManager owns it
			// and must renew it.
			if nmPID != 0 && (p.PPID == nmPID || strings.HasPrefix(a.lfFile, nmLeaseDir+"/")) {
				continue
			}
			if len(c.ifaces) == 0 {
				c.ifaces = leaseIfaces(s, a.lfFile)
			}
			out = append(out, c)
		case "udhcpc", "udhcpc6", "busybox":
			argv := p.Argv
			if p.Comm == "busybox" || filepath.Base(argv[0]) == "busybox" {
				if len(argv) < 2 || (argv[1] != "udhcpc" && argv[1] != "udhcpc6") {
					continue
				}
				argv = argv[1:]
			}
			iface, pidFile := udhcpcArgs(argv)
			fam := 4
			if filepath.Base(argv[0]) == "udhcpc6" {
				fam = 6
			}
			out = append(out, &client{kind: UDHCPC, proc: p, ifaces: []string{iface}, family: fam, pidFile: pidFile})
		case "dhcpcd":
			if dhcpcdSeen[p.PID] || dhcpcdSeen[p.PPID] {
				continue
			}
			// No pid file seen (another mount namespace): the manager is the
			// dhcpcd whose parent is not a dhcpcd.
			if pp, ok := byPID[p.PPID]; ok && pp.Comm == "dhcpcd" {
				continue
			}
			out = append(out, &client{kind: DHCPCD, proc: p, ifaces: dhcpcdTitleIfaces(p.Argv), family: dhcpcdTitleFamily(p.Argv)})
		case "systemd-network":
			c := &client{kind: Networkd, proc: p, family: 4}
			// networkd writes a lease file per link index it holds a
			// DHCPv4 lease on.
			if names, err := s.readDir(networkdLeases); err == nil {
				for _, n := range names {
					if idx, err := strconv.Atoi(n); err == nil {
						if name := ifaceName(addrs, idx); name != "" {
							c.ifaces = append(c.ifaces, name)
						}
					}
				}
			}
			if len(c.ifaces) == 0 {
				c.ifaces = []string{} // decided per interface below
			}
			out = append(out, c)
		case "NetworkManager":
			backend := "internal"
			for _, q := range procs {
				if q.Comm == "dhclient" && (q.PPID == p.PID || strings.HasPrefix(parseDHClient(q.Argv).lfFile, nmLeaseDir+"/")) {
					backend = "dhclient"
				}
			}
			out = append(out, &client{kind: NetworkManager, proc: p, backend: backend})
		}
	}
	return out, nil
}

// dhcpcdTitleIfaces reads the interfaces from dhcpcd's process title
// ("dhcpcd: eth0 [ip4]"; "dhcpcd: [manager] [ip4] [ip6]" manages all).
func dhcpcdTitleIfaces(argv []string) []string {
	var ifaces []string
	for _, w := range strings.Fields(strings.Join(argv, " ")) {
		if strings.HasPrefix(w, "-") || strings.HasPrefix(w, "[") || strings.HasPrefix(w, "dhcpcd") || strings.HasSuffix(w, "dhcpcd") {
			continue
		}
		if !strings.ContainsAny(w, "/=:") {
			ifaces = append(ifaces, w)
		}
	}
	return ifaces
}

func dhcpcdTitleFamily(argv []string) int {
	t := " " + strings.Join(argv, " ") + " "
	v4 := strings.Contains(t, "[ip4]") || strings.Contains(t, " -4 ")
	v6 := strings.Contains(t, "[ip6]") || strings.Contains(t, " -6 ")
	switch {
	case v4 && !v6:
		return 4
	case v6 && !v4:
		return 6
	}
	return 0
}

// leaseIfaces lists the interfaces a dhclient lease file has leases for.
func leaseIfaces(s system, path string) []string {
	b, err := s.readFile(path)
	if err != nil {
		return nil
	}
	leases, _ := ParseLeases(b)
	var out []string
	for _, l := range leases {
		if l.Interface != "" && !slices.Contains(out, l.Interface) {
			out = append(out, l.Interface)
		}
	}
	return out
}

func ifaceName(addrs []Addr, index int) string {
	for _, a := range addrs {
		if a.Index == index {
			return a.Interface
		}
	}
	return ""
}

func ifaceIndex(addrs []Addr, name string) int {
	for _, a := range addrs {
		if a.Interface == name {
			return a.Index
		}
	}
	return 0
}

// owner picks the client that manages address a: a client naming the
// interface wins over one that manages every interface; networkd and
// NetworkManager claim what they say they manage (lease files, D-Bus) and,
// failing that, what no other client claims.
func owner(ctx context.Context, s system, clients []*client, a Addr, nm map[string]nmDevice) *client {
	var general *client
	for _, c := range clients {
		switch c.kind {
		case Networkd:
			if len(c.ifaces) > 0 && c.manages(a.Interface, a.family()) {
				return c
			}
			continue
		case NetworkManager:
			dev, ok := nm[a.Interface]
			if !ok {
				var err error
				dev, err = s.nmDevice(ctx, a.Interface)
				if err != nil {
					dev = nmDevice{}
				}
				nm[a.Interface] = dev
			}
			if dev.DHCP4 && a.family() == 4 || dev.DHCP6 && a.family() == 6 {
				return c
			}
			continue
		}
		if !c.manages(a.Interface, a.family()) {
			continue
		}
		if len(c.ifaces) > 0 {
			return c
		}
		if general == nil {
			general = c
		}
	}
	if general != nil {
		return general
	}
	// Last resort: a networkd whose lease files we cannot see (another
	// mount namespace) manages the dynamic IPv4 addresses nobody else does.
	for _, c := range clients {
		if c.kind == Networkd && len(c.ifaces) == 0 && a.family() == 4 {
			return c
		}
	}
	return nil
}
