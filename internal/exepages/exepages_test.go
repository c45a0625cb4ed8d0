package exepages

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReleasable(t *testing.T) {
	type want struct {
		Start, End uintptr
		Perms      string
		RssKiB     int64
	}
	tests := []struct {
		file         string
		major, minor uint32
		inode        uint64
		want         []want
	}{
		// ntptool run, static: its text and read-only data; not its data.
		{"ntptool-run.smaps", 0xfe, 0, 10027151, []want{
			{0x400000, 0x946000, "r-xp", 4888},
			{0x946000, 0xee9000, "r--p", 4364},
		}},
		// A PIE binary: not the RELRO mapping, read-only but relocated
		// (128 KiB anonymous).
		{"pie.smaps", 0xfe, 0, 10027424, []want{
			{0x55d05c778000, 0x55d05c80e000, "r-xp", 600},
			{0x55d05c80e000, 0x55d05c8dc000, "r--p", 816},
		}},
		{"pie.smaps", 0xfe, 1, 10027424, nil}, // another device
		{"pie.smaps", 0xfe, 0, 1, nil},        // another file
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%x:%x/%d", tt.file, tt.major, tt.minor, tt.inode), func(t *testing.T) {
			f, err := os.Open("testdata/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			ms, err := ParseSmaps(f)
			if err != nil {
				t.Fatal(err)
			}
			var got []want
			for _, m := range Releasable(ms, tt.major, tt.minor, tt.inode) {
				got = append(got, want{m.Start, m.End, m.Perms, m.RssKiB})
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Releasable (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSmaps(t *testing.T) {
	const header = "00400000-00401000 r-xp 00000000 fe:00 12 /bin/x\n"
	tests := []struct {
		name, in string
		want     []Mapping
		wantErr  string
	}{
		{"empty", "", nil, ""},
		{"fields", header + "Rss:  8 kB\nAnonymous: 4 kB\nSwap:  12 kB\nVmFlags: rd ex\n",
			[]Mapping{{Start: 0x400000, End: 0x401000, Perms: "r-xp", Major: 0xfe, Inode: 12, RssKiB: 8, AnonKiB: 4, SwapKiB: 12}}, ""},
		{"no path", "7f00-7f10 rw-p 00000000 00:00 0\n", []Mapping{{Start: 0x7f00, End: 0x7f10, Perms: "rw-p"}}, ""},
		{"path with colon", "1000-2000 r--p 0 08:01 7 /tmp/a: b (deleted)\n", []Mapping{{Start: 0x1000, End: 0x2000, Perms: "r--p", Major: 8, Minor: 1, Inode: 7}}, ""},
		{"field first", "Rss: 8 kB\n" + header, nil, "line 1: field \"Rss\" before any mapping"},
		{"short header", "00400000-00401000 r-xp 0 fe:00\n", nil, "line 1: mapping"},
		{"end before start", "2000-1000 r-xp 0 fe:00 1\n", nil, "line 1: mapping"},
		{"bad device", "1000-2000 r-xp 0 fe00 1\n", nil, "line 1: mapping"},
		{"bad perms", "1000-2000 rx 0 fe:00 1\n", nil, "line 1: mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSmaps(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseSmaps (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseSmaps(f *testing.F) {
	for _, name := range []string{"ntptool-run.smaps", "pie.smaps"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := ParseSmaps(strings.NewReader(string(b)))
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.End < m.Start || len(m.Perms) != 4 {
				t.Fatalf("mapping %+v: end before start or bad perms", m)
			}
		}
	})
}

// TestRelease releases this test binary's pages: its resident file pages
// shrink, and the code that faults back in runs as before.
func TestRelease(t *testing.T) {
	before := rssFileKiB(t)
	released, err := Release()
	if err != nil {
		t.Fatal(err)
	}
	after := rssFileKiB(t)
	t.Logf("RssFile %d KiB → %d KiB; %d KiB released", before, after, released)
	if released <= 0 || after >= before {
		t.Errorf("released %d KiB, RssFile %d → %d KiB: want it smaller", released, before, after)
	}
	if got := fmt.Sprintf("%x %q %.3f", 48879, "ntp", 1.0/3); got != `beef "ntp" 0.333` {
		t.Errorf("after the release: %s", got)
	}
}

func rssFileKiB(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "RssFile:"); ok {
			return kib(v)
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}
