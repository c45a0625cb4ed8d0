// Package exepages drops the pages of the running executable that only
// start-up used from the process's resident set.
//
// A Go binary's start-up (the runtime's and every package's
// initialisation, the command line, the configuration) touches most of its
// text and read-only data, and the kernel maps up to 64 KiB around each
// page fault of a file mapping (fault_around_bytes). Those pages stay
// mapped, and counted in the resident set, long after the last use: for
// ntptool run that is three quarters of its RSS. Release unmaps them with
// madvise(MADV_DONTNEED). They stay in the page cache, so the ones the
// process uses again fault back in without reading the disk.
//
// How much comes back depends on how the page cache holds the file: read
// from disk, in small folios, a fault maps 64 KiB; a file just written in
// large writes (an install, a copy) sits in large folios, and Linux 6.18
// (where this was measured) maps a whole folio, up to 2 MiB, at a fault,
// so little is saved until the file is read from disk again (after a
// reboot).
//
// Only mappings of the executable that are read-only and hold no
// anonymous pages, resident or swapped out, are touched: discarding a private page the process has
// written (the relocated data of a PIE binary, RELRO) would bring back the
// file's original contents.
package exepages

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Mapping is one mapping of /proc/PID/smaps.
type Mapping struct {
	Start, End   uintptr
	Perms        string // "r-xp": readable, executable, private
	Major, Minor uint32 // the device of the mapped file
	Inode        uint64 // the mapped file's inode; 0 for anonymous memory
	RssKiB       int64  // resident
	AnonKiB      int64  // resident and anonymous: written, copied on write
	SwapKiB      int64  // anonymous and swapped out
}

// ParseSmaps reads the mappings of a /proc/PID/smaps file. Fields it
// does not use are skipped; a malformed header line is an error.
func ParseSmaps(r io.Reader) ([]Mapping, error) {
	var ms []Mapping
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		key, val, isField := strings.Cut(line, ":")
		if isField && !strings.Contains(key, " ") && !strings.Contains(key, "-") {
			if len(ms) == 0 {
				return nil, fmt.Errorf("smaps line %d: field %q before any mapping", n, key)
			}
			m := &ms[len(ms)-1]
			switch key {
			case "Rss":
				m.RssKiB = kib(val)
			case "Anonymous":
				m.AnonKiB = kib(val)
			case "Swap":
				m.SwapKiB = kib(val)
			}
			continue
		}
		m, err := parseHeader(line)
		if err != nil {
			return nil, fmt.Errorf("smaps line %d: %w", n, err)
		}
		ms = append(ms, m)
	}
	return ms, sc.Err()
}

// parseHeader parses "start-end perms offset major:minor inode [path]".
func parseHeader(line string) (Mapping, error) {
	var m Mapping
	f := strings.Fields(line)
	if len(f) < 5 {
		return m, fmt.Errorf("mapping %q: want start-end perms offset dev inode", line)
	}
	lo, hi, ok1 := strings.Cut(f[0], "-")
	maj, min, ok2 := strings.Cut(f[3], ":")
	start, err1 := strconv.ParseUint(lo, 16, 64)
	end, err2 := strconv.ParseUint(hi, 16, 64)
	major, err3 := strconv.ParseUint(maj, 16, 32)
	minor, err4 := strconv.ParseUint(min, 16, 32)
	inode, err5 := strconv.ParseUint(f[4], 10, 64)
	if !ok1 || !ok2 || end < start || len(f[1]) != 4 || err1 != nil || err2 != nil || err3 != nil || err4 != nil || err5 != nil {
		return m, fmt.Errorf("mapping %q: want start-end perms offset dev inode", line)
	}
	m.Start, m.End, m.Perms = uintptr(start), uintptr(end), f[1]
	m.Major, m.Minor, m.Inode = uint32(major), uint32(minor), inode
	return m, nil
}

// kib parses " 1234 kB"; anything else is 0.
func kib(s string) int64 {
	v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(s), " kB"), 10, 64)
	return v
}

// Releasable says which of ms may be released: the read-only private
// mappings of the file (major, minor, inode) that hold no anonymous
// pages, resident or swapped.
func Releasable(ms []Mapping, major, minor uint32, inode uint64) []Mapping {
	var out []Mapping
	for _, m := range ms {
		if m.Inode == inode && m.Major == major && m.Minor == minor && m.AnonKiB == 0 && m.SwapKiB == 0 &&
			(m.Perms == "r-xp" || m.Perms == "r--p") {
			out = append(out, m)
		}
	}
	return out
}

// Release unmaps the executable's releasable pages from this process
// and returns how many KiB were resident in them.
func Release() (releasedKiB int64, err error) {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &st); err != nil {
		return 0, fmt.Errorf("release the executable's pages: %w", err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, fmt.Errorf("release the executable's pages: %w", err)
	}
	ms, err := ParseSmaps(f)
	f.Close()
	if err != nil {
		return 0, fmt.Errorf("release the executable's pages: %w", err)
	}
	for _, m := range Releasable(ms, unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino) {
		// Addresses, not Go pointers: nothing of Go's heap is involved.
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, m.Start, m.End-m.Start, unix.MADV_DONTNEED); e != 0 {
			return releasedKiB, fmt.Errorf("release the executable's pages: madvise: %w", e)
		}
		releasedKiB += m.RssKiB
	}
	return releasedKiB, nil
}
