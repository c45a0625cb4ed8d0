// Package privdrop gives the daemon least privilege when it is started as
// root without systemd (which does the same from the unit file): it keeps
// only the capabilities the configuration needs, CAP_SYS_TIME to adjust
// the clock and CAP_NET_BIND_SERVICE to serve on a port below 1024,
// switches to the configured user and group, and then restricts its own
// file access with Landlock to the directories it writes (drift file,
// audit journal, control socket) where the kernel has Landlock.
//
// The capability and user changes go through libcap's Go package
// (kernel.org/pub/linux/libs/security/libcap/cap), which applies each
// change to every thread of the process (psx). That matters: Linux keeps
// credentials per thread, and a Go program has many. Go 1.26's
// syscall.Setuid/Setgid apply to all threads (without cgo through
// syscall.AllThreadsSyscall, with cgo through libc's setuid, which glibc
// broadcasts), but unix.Prctl(PR_SET_KEEPCAPS) and capset act on the
// calling thread only, so keeping capabilities across setuid by hand
// leaves the other threads with none; cap.SetUID raises keep-caps and
// calls setuid on all threads together, and Set.SetProc sets every
// thread's capabilities.
//
// Plan is pure (configuration in, what to do out) and table-tested; Apply
// does it and reports what it could not apply, so that the daemon logs it.
package privdrop

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"kernel.org/pub/linux/libs/security/libcap/cap"

	"github.com/ntptool/ntptool/config"
)

// Plan is what Apply does.
type Plan struct {
	// User is the user to switch to ("" keeps the current one). Its
	// primary group becomes the process's only group.
	User string
	// Caps are the capabilities kept (permitted and effective); every
	// other one is dropped from all sets and from the bounding set.
	Caps []cap.Value
	// Landlock are the file access rules; nil skips Landlock.
	Landlock *Paths
}

// Paths are Landlock's file access rules. Paths that do not exist are
// skipped (and reported).
type Paths struct {
	// RWDirs may be read and written, files in them created, renamed and
	// removed (drift file, journal, socket directories).
	RWDirs []string
	// RODirs may be read and their programs executed (system
	// directories, for hooks).
	RODirs []string
	// RWFiles and ROFiles are single files.
	RWFiles []string
	ROFiles []string
}

// Caps returns the capabilities the daemon needs under cfg: CAP_SYS_TIME
// unless clock control is off, CAP_NET_BIND_SERVICE only when the NTP
// server is enabled, or metrics are served, on a port below 1024; nothing
// else.
func Caps(cfg *config.Config) []cap.Value {
	var caps []cap.Value
	if cfg.Clock.Control {
		caps = append(caps, cap.SYS_TIME)
	}
	var listen []string
	if cfg.Server.Enabled {
		listen = append(listen, cfg.Server.Listen...)
	}
	if cfg.Metrics.Listen != "" {
		listen = append(listen, cfg.Metrics.Listen)
	}
	for _, addr := range listen {
		if privilegedPort(addr) {
			caps = append(caps, cap.NET_BIND_SERVICE)
			break
		}
	}
	return caps
}

// privilegedPort reports whether addr ("host:port") has a port in 1..1023
// (port 0 picks a free, unprivileged port).
func privilegedPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false // Validate has rejected it already
	}
	n, err := strconv.Atoi(port)
	return err == nil && n > 0 && n < 1024
}

// systemDirs are read and executed by hooks (and the resolver reads /etc).
var systemDirs = []string{"/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"}

// hookDirs are writable when hooks run: DHCP clients keep leases and
// control sockets there, and Landlock binds the hooks the daemon starts.
var hookDirs = []string{"/run", "/var/lib", "/tmp"}

// procDirs and procFiles are what the process's own metrics read
// (process_* of the Prometheus client: /proc/PID/stat, fd, limits, and
// the boot time in /proc/stat).
var (
	procDirs  = []string{"/proc/self"}
	procFiles = []string{"/proc/stat"}
)

// PlanFor returns the plan for cfg, read from configPath (which stays
// readable, for a reload; "" if none).
func PlanFor(cfg *config.Config, configPath string) Plan {
	return planFor(cfg, configPath, true)
}

// PlanWithHookHelper is PlanFor for a daemon whose hooks run in a
// separate, privileged helper process started before the drop (package
// hookproxy): the directories only the hooks write (/run, /var/lib,
// /tmp) stay closed to the daemon itself.
func PlanWithHookHelper(cfg *config.Config, configPath string) Plan {
	return planFor(cfg, configPath, false)
}

func planFor(cfg *config.Config, configPath string, hooksHere bool) Plan {
	p := Plan{User: cfg.Run.User, Caps: Caps(cfg)}
	paths := &Paths{RODirs: slices.Concat(systemDirs, procDirs), RWFiles: []string{"/dev/null"}, ROFiles: slices.Clone(procFiles)}
	for _, f := range []string{cfg.DriftFile, cfg.Audit.Journal, cfg.Control.Socket} {
		if f != "" && !slices.Contains(paths.RWDirs, filepath.Dir(f)) {
			paths.RWDirs = append(paths.RWDirs, filepath.Dir(f))
		}
	}
	if configPath != "" {
		paths.ROFiles = append(paths.ROFiles, configPath)
	}
	if hooksHere && HooksConfigured(cfg.Hooks) {
		for _, d := range hookDirs {
			if !slices.Contains(paths.RWDirs, d) {
				paths.RWDirs = append(paths.RWDirs, d)
			}
		}
	}
	p.Landlock = paths
	return p
}

// HooksConfigured reports whether h runs anything around steps: exec
// hooks, or the built-in DHCP renewers.
func HooksConfigured(h config.Hooks) bool {
	return len(h.PreStep)+len(h.PostStep)+len(h.ExternalStep) > 0 || h.DHCPRenew != "off"
}

// LookupUser finds a user by name or numeric uid (a uid without an
// account gets the group of the same number): the ids Apply switches to.
func LookupUser(name string) (uid, gid int, err error) { return lookup(name) }

// Result is what Apply did.
type Result struct {
	// UID and GID are the process's ids afterwards.
	UID, GID int
	// Caps are the capabilities kept.
	Caps []string
	// LandlockABI is the kernel's Landlock ABI version, 0 if it has none.
	LandlockABI int
	// Landlocked says file access is restricted.
	Landlocked bool
	// NotApplied lists what could not be applied, for the log.
	NotApplied []string
}

// Errors of Apply.
var (
	ErrCapUnavailable = errors.New("a needed capability is not permitted")
	ErrNotRoot        = errors.New("switching user needs root (CAP_SETUID and CAP_SETGID)")
)

// landlockConfig is the Landlock ABI the rules are written for: V5 covers
// every file access right (to ioctl on devices) but not the restriction of
// connect() on Unix sockets (V9), which would cut the daemon off from
// systemd's notify socket and D-Bus.
var landlockConfig = landlock.V5

// Apply carries out p: checks that the needed capabilities are permitted,
// drops every other capability from the bounding set, switches group and
// user keeping the needed capabilities (permitted and effective; the
// inheritable and ambient sets are cleared, so hooks run without
// capabilities), and restricts file access with Landlock (best effort:
// what the kernel cannot do is reported in Result.NotApplied and logged).
// On an error the process may be half-way and should exit.
func Apply(p Plan, log *slog.Logger) (Result, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var res Result
	proc := cap.GetProc()
	for _, v := range p.Caps {
		if ok, err := proc.GetFlag(cap.Permitted, v); err != nil || !ok {
			return res, fmt.Errorf("%w: %s (is it outside the bounding set, e.g. systemd's CapabilityBoundingSet or setpriv --bounding-set?)", ErrCapUnavailable, v)
		}
	}
	uid, gid := os.Getuid(), os.Getgid()
	if p.User != "" {
		var err error
		if uid, gid, err = lookup(p.User); err != nil {
			return res, err
		}
	}
	switching := uid != os.Getuid() || gid != os.Getgid() || uid != os.Geteuid()

	// The bounding set first, while CAP_SETPCAP is still effective.
	if ok, _ := proc.GetFlag(cap.Effective, cap.SETPCAP); ok {
		if err := dropBound(p.Caps); err != nil {
			return res, err
		}
	} else if extra := boundBeyond(p.Caps); len(extra) > 0 {
		// Under systemd, CapabilityBoundingSet= has done it already.
		res.NotApplied = append(res.NotApplied, fmt.Sprintf("bounding set not reduced (no CAP_SETPCAP): it still holds %v", extra))
	}
	if switching {
		if ok, _ := proc.GetFlag(cap.Permitted, cap.SETUID); !ok {
			return res, fmt.Errorf("switch to user %q: %w", p.User, ErrNotRoot)
		}
		if err := cap.SetGroups(gid); err != nil {
			return res, fmt.Errorf("switch to group %d: %w", gid, err)
		}
		if err := cap.SetUID(uid); err != nil {
			return res, fmt.Errorf("switch to user %q (uid %d): %w", p.User, uid, err)
		}
	}
	final := cap.NewSet()
	if len(p.Caps) > 0 {
		if err := final.SetFlag(cap.Permitted, true, p.Caps...); err != nil {
			return res, err
		}
		if err := final.SetFlag(cap.Effective, true, p.Caps...); err != nil {
			return res, err
		}
	}
	if err := final.SetProc(); err != nil {
		return res, fmt.Errorf("set capabilities to %v: %w", final, err)
	}
	if err := cap.ResetAmbient(); err != nil {
		return res, fmt.Errorf("clear ambient capabilities: %w", err)
	}

	// Check what the kernel says, not what was asked.
	res.UID, res.GID = os.Getuid(), os.Getgid()
	if res.UID != uid || os.Geteuid() != uid || res.GID != gid || os.Getegid() != gid {
		return res, fmt.Errorf("after the switch: uid %d/%d gid %d/%d, want %d and %d", res.UID, os.Geteuid(), res.GID, os.Getegid(), uid, gid)
	}
	now := cap.GetProc()
	if cf, err := now.Cf(final); err != nil || cf != 0 {
		return res, fmt.Errorf("capabilities after the drop are %q, want %q", now, final)
	}
	for _, v := range p.Caps {
		res.Caps = append(res.Caps, v.String())
	}

	if p.Landlock != nil {
		var notApplied []string
		res.LandlockABI, res.Landlocked, notApplied = restrictFiles(*p.Landlock)
		res.NotApplied = append(res.NotApplied, notApplied...)
	}
	for _, msg := range res.NotApplied {
		log.Warn("privilege drop: not applied", "what", msg)
	}
	log.Info("privileges dropped", "uid", res.UID, "gid", res.GID, "caps", res.Caps,
		"landlock_abi", res.LandlockABI, "landlocked", res.Landlocked)
	return res, nil
}

// lookup finds a user by name or numeric uid; a uid without an account
// gets the group of the same number.
func lookup(name string) (uid, gid int, err error) {
	u, err := user.Lookup(name)
	var unknown user.UnknownUserError
	if n, nerr := strconv.Atoi(name); errors.As(err, &unknown) && nerr == nil && n >= 0 {
		if u, err = user.LookupId(name); err != nil {
			return n, n, nil
		}
	}
	if err != nil {
		return 0, 0, fmt.Errorf("run.user %q: %w", name, err)
	}
	if uid, err = strconv.Atoi(u.Uid); err != nil {
		return 0, 0, fmt.Errorf("run.user %q: uid %q: %w", name, u.Uid, err)
	}
	if gid, err = strconv.Atoi(u.Gid); err != nil {
		return 0, 0, fmt.Errorf("run.user %q: gid %q: %w", name, u.Gid, err)
	}
	return uid, gid, nil
}

// dropBound removes every capability but keep from the bounding set, so
// that nothing the daemon runs can regain one through a file capability or
// a setuid binary.
func dropBound(keep []cap.Value) error {
	for v := cap.Value(0); v < cap.MaxBits(); v++ {
		if slices.Contains(keep, v) {
			continue
		}
		in, err := cap.GetBound(v)
		if err != nil || !in {
			continue
		}
		if err := cap.DropBound(v); err != nil {
			return fmt.Errorf("drop %s from the bounding set: %w", v, err)
		}
	}
	return nil
}

// boundBeyond lists the capabilities in the bounding set that keep lacks.
func boundBeyond(keep []cap.Value) []string {
	var extra []string
	for v := cap.Value(0); v < cap.MaxBits(); v++ {
		if in, err := cap.GetBound(v); err == nil && in && !slices.Contains(keep, v) {
			extra = append(extra, v.String())
		}
	}
	return extra
}

// restrictFiles applies the Landlock rules, best effort, and says what it
// could not apply.
func restrictFiles(p Paths) (abi int, applied bool, notApplied []string) {
	abi, err := llsys.LandlockGetABIVersion()
	if err != nil {
		return 0, false, []string{fmt.Sprintf("Landlock: the kernel has none (%v): file access is not restricted", err)}
	}
	if abi < 5 {
		notApplied = append(notApplied, fmt.Sprintf("Landlock ABI %d < 5: %s", abi, missingRights(abi)))
	}
	var rules []landlock.Rule
	add := func(rule func(...string) landlock.FSRule, paths []string) {
		var present []string
		for _, path := range paths {
			if _, err := os.Stat(path); err != nil {
				if slices.Contains(systemDirs, path) || slices.Contains(hookDirs, path) || slices.Contains(procDirs, path) || slices.Contains(procFiles, path) {
					continue // not on every system (/lib32, /libx32)
				}
				notApplied = append(notApplied, fmt.Sprintf("Landlock: %s: %v: no access granted", path, err))
				continue
			}
			present = append(present, path)
		}
		if len(present) > 0 {
			rules = append(rules, rule(present...).IgnoreIfMissing())
		}
	}
	add(landlock.RWDirs, p.RWDirs)
	add(landlock.RODirs, p.RODirs)
	add(landlock.RWFiles, p.RWFiles)
	add(landlock.ROFiles, p.ROFiles)
	if err := landlockConfig.BestEffort().RestrictPaths(rules...); err != nil {
		return abi, false, append(notApplied, fmt.Sprintf("Landlock: %v: file access is not restricted", err))
	}
	return abi, true, notApplied
}

// missingRights says what an older Landlock ABI cannot restrict.
func missingRights(abi int) string {
	var m []string
	if abi < 2 {
		m = append(m, "renaming and linking across directories (refer)")
	}
	if abi < 3 {
		m = append(m, "truncation")
	}
	if abi < 5 {
		m = append(m, "device ioctls")
	}
	return fmt.Sprintf("not restricted: %v", m)
}
