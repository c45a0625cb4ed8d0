package peers

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// Veth is a veth pair joining two test namespaces: one end in A with
// address AddrA, the other in B with AddrB (a /30 of 10.231.0.0/16).
type Veth struct {
	A, B         *Netns
	AddrA, AddrB string
}

// NewVeth joins namespaces a and b with a veth pair and addresses both ends
// (10.231.N.1 in a, 10.231.N.2 in b). The pair lives only inside the two
// namespaces (it is never in the caller's), and goes away with them.
func NewVeth(t TB, a, b *Netns) *Veth {
	t.Helper()
	n := nsSeq.next()
	ifA := fmt.Sprintf("nva%d-%d", os.Getpid()%100000, n%100)
	ifB := fmt.Sprintf("nvb%d-%d", os.Getpid()%100000, n%100)
	subnet := fmt.Sprintf("10.231.%d", n%250)
	v := &Veth{A: a, B: b, AddrA: subnet + ".1", AddrB: subnet + ".2"}
	steps := [][]string{
		{"ip", "link", "add", ifA, "netns", a.Name, "type", "veth", "peer", "name", ifB, "netns", b.Name},
		{"ip", "-n", a.Name, "addr", "add", v.AddrA + "/24", "dev", ifA},
		{"ip", "-n", b.Name, "addr", "add", v.AddrB + "/24", "dev", ifB},
		{"ip", "-n", a.Name, "link", "set", ifA, "up"},
		{"ip", "-n", b.Name, "link", "set", ifB, "up"},
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	return v
}

// CPUSeconds returns the user+system CPU time a process has used so far,
// from /proc/PID/stat (clock ticks of 1/100 s).
func CPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces: skip past its ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return float64(ut+st) / 100, nil
}

// RSSBytes returns a process's resident set size from /proc/PID/status.
func RSSBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024, err
			}
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}
