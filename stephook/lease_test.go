package stephook

import (
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// cmpAddr compares netip values by value.
var cmpAddr = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseLeases(t *testing.T) {
	sec := func(n int) time.Duration { return time.Duration(n) * time.Second }
	for _, tt := range []struct {
		file    string
		want    []Lease
		wantErr bool
	}{{
		// The example lease of the seed (an EC2 instance, 1 h lease).
		file: "seed-ec2.leases",
		want: []Lease{{
			Interface: "eth0", Address: netip.MustParseAddr("172.31.84.251"), PrefixLen: 20,
			LeaseTime: sec(3600), PreferredLife: sec(3600),
			Renew: utc("2023-05-13T09:02:55Z"), Rebind: utc("2023-05-13T09:28:04Z"), Expire: utc("2023-05-13T09:35:34Z"),
		}},
	}, {
		// Written by dhclient 4.4.3 against dnsmasq (120 s) in the netns
		// lab: the first lease, then the one of a restart (ntptool renew).
		file: "dhclient4-dnsmasq.leases",
		want: []Lease{{
			Interface: "sh-c", Address: netip.MustParseAddr("198.18.7.145"), PrefixLen: 24,
			LeaseTime: sec(120), PreferredLife: sec(120),
			Renew: utc("2026-12-01T09:06:45Z"), Rebind: utc("2026-12-01T09:07:43Z"), Expire: utc("2026-12-01T09:07:58Z"),
		}, {
			Interface: "sh-c", Address: netip.MustParseAddr("198.18.7.145"), PrefixLen: 24,
			LeaseTime: sec(120), PreferredLife: sec(120),
			Renew: utc("2026-12-01T09:07:06Z"), Rebind: utc("2026-12-01T09:07:52Z"), Expire: utc("2026-12-01T09:08:07Z"),
		}},
	}, {
		// dhclient -6 4.4.3 against dnsmasq, in the netns lab.
		file: "dhclient6-dnsmasq.leases",
		want: []Lease{lease6Lab},
	}, {
		file: "two-interfaces-epoch.leases",
		want: []Lease{{
			Interface: "eth0", Address: netip.MustParseAddr("192.0.2.10"), PrefixLen: 24,
			LeaseTime: sec(600), PreferredLife: sec(600),
			Renew: time.Unix(1700000300, 0).UTC(), Rebind: time.Unix(1700000525, 0).UTC(), Expire: time.Unix(1700000600, 0).UTC(),
		}, {
			Interface: "eth1", Address: netip.MustParseAddr("198.51.100.7"), PrefixLen: 23,
			LeaseTime: sec(4294967295), PreferredLife: sec(4294967295),
		}, {
			Interface: "eth0", Address: netip.MustParseAddr("192.0.2.10"), PrefixLen: 24,
			LeaseTime: sec(600), PreferredLife: sec(600),
			Renew: time.Unix(1700000900, 0).UTC(), Rebind: time.Unix(1700001125, 0).UTC(), Expire: time.Unix(1700001200, 0).UTC(),
		}},
	}, {
		// Bad address, bad date, a stray brace and an unterminated lease
		// are skipped; the good lease among them is kept.
		file: "garbage.leases",
		want: []Lease{{
			Interface: "eth0", Address: netip.MustParseAddr("192.0.2.30"), PrefixLen: 24,
			LeaseTime: sec(300), PreferredLife: sec(300),
			Renew: utc("2024-01-01T00:02:30Z"), Rebind: utc("2024-01-01T00:04:22Z"), Expire: utc("2024-01-01T00:05:00Z"),
		}},
		wantErr: true,
	}} {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile("testdata/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseLeases(data)
			if (err != nil) != tt.wantErr || err != nil && !errors.Is(err, ErrLeaseSyntax) {
				t.Errorf("error %v, want error: %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got, cmpAddr); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

var lease6Lab = Lease{
	V6: true, Interface: "sh-c", Address: netip.MustParseAddr("2001:db8:7::1ca"),
	LeaseTime: 120 * time.Second, PreferredLife: 120 * time.Second,
	Renew:  time.Unix(1796116030+60, 0).UTC(),
	Rebind: time.Unix(1796116030+105, 0).UTC(),
	Expire: time.Unix(1796116030+120, 0).UTC(),
	Addrs: []LeaseAddr{{Address: netip.MustParseAddr("2001:db8:7::1ca"), Starts: time.Unix(1796116030, 0).UTC(),
		PreferredLife: 120 * time.Second, MaxLife: 120 * time.Second}},
}

func TestLatestLease(t *testing.T) {
	data, err := os.ReadFile("testdata/two-interfaces-epoch.leases")
	if err != nil {
		t.Fatal(err)
	}
	leases, _ := ParseLeases(data)
	for _, tt := range []struct {
		iface   string
		family  int
		want    string // Renew, or "" for none
		wantAdr string
	}{
		{"eth0", 4, "2023-11-14T22:28:20Z", "192.0.2.10"},
		{"eth1", 4, "0001-01-01T00:00:00Z", "198.51.100.7"},
		{"", 4, "2023-11-14T22:28:20Z", "192.0.2.10"},
		{"eth0", 6, "", ""},
		{"eth9", 4, "", ""},
	} {
		l, ok := LatestLease(leases, tt.iface, tt.family)
		if !ok {
			if tt.want != "" {
				t.Errorf("%s/%d: no lease", tt.iface, tt.family)
			}
			continue
		}
		if got := l.Renew.Format(time.RFC3339); got != tt.want || l.Address.String() != tt.wantAdr {
			t.Errorf("%s/%d: renew %s address %s, want %s %s", tt.iface, tt.family, got, l.Address, tt.want, tt.wantAdr)
		}
	}
}

func TestWithoutLeases6(t *testing.T) {
	data, err := os.ReadFile("testdata/dhclient6-dnsmasq.leases")
	if err != nil {
		t.Fatal(err)
	}
	other := strings.ReplaceAll(string(data), `"sh-c"`, `"eth7"`)
	mixed := string(data) + other[strings.Index(other, "lease6"):]
	got := string(withoutLeases6([]byte(mixed), "sh-c"))
	leases, err := ParseLeases([]byte(got))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, `default-duid "`) {
		t.Errorf("the DUID was dropped:\n%s", got)
	}
	if len(leases) != 1 || leases[0].Interface != "eth7" {
		t.Errorf("want the eth7 lease only, got %+v", leases)
	}
}

// FuzzParseLeases: any input gives leases and/or an error, never a panic,
// and every lease returned is well formed.
func FuzzParseLeases(f *testing.F) {
	for _, name := range []string{"seed-ec2.leases", "dhclient4-dnsmasq.leases", "dhclient6-dnsmasq.leases", "two-interfaces-epoch.leases", "garbage.leases"} {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`lease { lease { lease { lease { lease { lease { lease { lease { lease { } } } } } } } } }`))
	f.Add([]byte("lease6 { ia-na x { starts 99999999999999; iaaddr ::1 { max-life 1; } } }"))
	f.Add([]byte("\"unterminated \\"))
	f.Fuzz(func(t *testing.T, data []byte) {
		leases, err := ParseLeases(data)
		if err != nil && !errors.Is(err, ErrLeaseSyntax) {
			t.Fatalf("error %v does not wrap ErrLeaseSyntax", err)
		}
		for _, l := range leases {
			if !l.Address.IsValid() {
				t.Fatalf("lease without an address: %+v", l)
			}
			if l.LeaseTime < 0 || l.LeaseTime > maxLeaseSeconds*time.Second {
				t.Fatalf("lease time %v out of range", l.LeaseTime)
			}
		}
		_ = withoutLeases6(data, "eth0")
	})
}
