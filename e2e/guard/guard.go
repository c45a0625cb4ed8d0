// Package guard decides whether this process runs inside the end-to-end test
// guest (a QEMU virtual machine booted by the e2e harness), the only place
// where the e2e code may change a clock. Every clock-changing function of the
// guest init calls Check first and refuses on any error.
//
// The proof has three parts, all required:
//
//  1. the kernel command line carries Marker, which only the harness passes
//     to the guest kernel (a host kernel never has it);
//  2. the machine says it is QEMU: DMI sys_vendor or product_name is
//     "QEMU", or /proc/cpuinfo names a QEMU CPU model;
//  3. PID 1 is the harness's init: this process is PID 1, or PID 1's
//     command line is exactly InitPath.
//
// On the host, (1) alone fails; a container or VM of someone else's fails
// (1) and (3).
package guard

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// Marker is the kernel command-line word that the e2e harness, and nothing
// else, passes to the guest kernel.
const Marker = "ntptool.e2e=1"

// InitPath is where the guest init lives in the initramfs; the kernel runs it
// as PID 1 with exactly this argv[0].
const InitPath = "/init"

// ErrNotGuest is wrapped by every refusal.
var ErrNotGuest = errors.New("not inside the ntptool e2e guest VM: refusing to change a clock")

// System is what the guard reads: files of the running system and the PID of
// this process. OS is the real one; tests pass fakes.
type System interface {
	// ReadFile reads a file such as "/proc/cmdline".
	ReadFile(name string) ([]byte, error)
	// Getpid is os.Getpid.
	Getpid() int
}

// Check returns nil only when sys proves it is the e2e guest; otherwise an
// error wrapping ErrNotGuest that says which part of the proof failed.
func Check(sys System) error {
	cmdline, err := sys.ReadFile("/proc/cmdline")
	if err != nil {
		return fmt.Errorf("%w: read /proc/cmdline: %v", ErrNotGuest, err)
	}
	if !hasWord(cmdline, Marker) {
		return fmt.Errorf("%w: kernel command line has no %q", ErrNotGuest, Marker)
	}
	if !isQEMU(sys) {
		return fmt.Errorf("%w: neither DMI nor /proc/cpuinfo says QEMU", ErrNotGuest)
	}
	if sys.Getpid() != 1 {
		pid1, err := sys.ReadFile("/proc/1/cmdline")
		if err != nil {
			return fmt.Errorf("%w: read /proc/1/cmdline: %v", ErrNotGuest, err)
		}
		argv0, _, _ := bytes.Cut(pid1, []byte{0})
		if string(argv0) != InitPath {
			return fmt.Errorf("%w: PID 1 is %q, not the e2e init %s", ErrNotGuest, argv0, InitPath)
		}
	}
	return nil
}

// hasWord reports whether the whitespace-separated cmdline has word exactly
// (so "ntptool.e2e=10" or "xntptool.e2e=1" do not count).
func hasWord(cmdline []byte, word string) bool {
	for _, f := range strings.Fields(string(cmdline)) {
		if f == word {
			return true
		}
	}
	return false
}

func isQEMU(sys System) bool {
	for _, f := range []string{"/sys/class/dmi/id/sys_vendor", "/sys/class/dmi/id/product_name"} {
		if b, err := sys.ReadFile(f); err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), "QEMU") {
			return true
		}
	}
	cpu, err := sys.ReadFile("/proc/cpuinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(cpu), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == "model name" && strings.Contains(v, "QEMU") {
			return true
		}
	}
	return false
}

// FS adapts an fs.FS rooted at "/" (and a PID) to System, for tests.
type FS struct {
	Files fs.FS
	PID   int
}

// ReadFile reads name (an absolute path) from the file system.
func (f FS) ReadFile(name string) ([]byte, error) {
	return fs.ReadFile(f.Files, strings.TrimPrefix(name, "/"))
}

// Getpid returns the configured PID.
func (f FS) Getpid() int { return f.PID }
