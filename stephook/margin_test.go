package stephook

import (
	"net/netip"
	"testing"
	"time"
)

func TestStepMargin(t *testing.T) {
	seed := &Lease{
		Interface: "eth0", Address: netip.MustParseAddr("172.31.84.251"), LeaseTime: time.Hour,
		Renew: utc("2023-05-13T09:02:55Z"), Rebind: utc("2023-05-13T09:28:04Z"), Expire: utc("2023-05-13T09:35:34Z"),
	}
	addr := func(valid time.Duration) Addr {
		return Addr{Interface: "eth0", Prefix: netip.MustParsePrefix("172.31.84.251/20"), Valid: valid, Preferred: valid}
	}
	s := func(n float64) *time.Duration { d := time.Duration(n * float64(time.Second)); return &d }
	for _, tt := range []struct {
		name     string
		kind     ClientKind
		backend  string
		a        Addr
		lease    *Lease
		now      string
		wantBack *time.Duration // nil: no limit
		immune   bool
		atRisk   bool
	}{
		// The seed at 09:00:00: the kernel has 2134 s left (to 09:35:34),
		// dhclient renews in 175 s: a step back of up to 1959 s is safe.
		{"seed, dhclient", DHClient, "", addr(2134 * time.Second), seed, "2023-05-13T09:00:00Z", s(1959), false, false},
		// The same host after an unhooked step back by 1 h: the renewal is
		// 3775 s away, the expiry 2134 s: lost without ntptool renew.
		{"seed after a step back", DHClient, "", addr(2134 * time.Second), seed, "2023-05-13T08:00:00Z", s(0), false, true},
		// T1 passed: dhclient is renewing now, so the margin is valid_lft.
		{"renewing", DHClient, "", addr(1534 * time.Second), seed, "2023-05-13T09:10:00Z", s(1534), false, false},
		{"dhclient, no lease file", DHClient, "", addr(100 * time.Second), nil, "2023-05-13T09:00:00Z", s(0), false, false},
		{"NetworkManager with dhclient", NetworkManager, "dhclient", addr(2134 * time.Second), seed, "2023-05-13T09:00:00Z", s(1959), false, false},
		{"NetworkManager internal", NetworkManager, "internal", addr(100 * time.Second), nil, "2023-05-13T09:00:00Z", nil, true, false},
		{"dhcpcd", DHCPCD, "", addr(100 * time.Second), nil, "2023-05-13T09:00:00Z", nil, true, false},
		{"udhcpc", UDHCPC, "", addr(100 * time.Second), nil, "2023-05-13T09:00:00Z", nil, true, false},
		{"networkd", Networkd, "", addr(100 * time.Second), nil, "2023-05-13T09:00:00Z", nil, true, false},
		{"no client", "", "", addr(100 * time.Second), nil, "2023-05-13T09:00:00Z", nil, false, true},
		{"forever", DHClient, "", addr(Forever), seed, "2023-05-13T09:00:00Z", nil, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := stepMargin(tt.kind, tt.backend, tt.a, tt.lease, utc(tt.now))
			switch {
			case (m.MaxBackward == nil) != (tt.wantBack == nil):
				t.Errorf("MaxBackward %v, want %v", m.MaxBackward, tt.wantBack)
			case m.MaxBackward != nil && *m.MaxBackward != *tt.wantBack:
				t.Errorf("MaxBackward %v, want %v", *m.MaxBackward, *tt.wantBack)
			}
			if m.MaxForward != nil {
				t.Errorf("MaxForward %v, want no limit", *m.MaxForward)
			}
			if m.Immune != tt.immune || m.AtRisk != tt.atRisk || m.Note == "" {
				t.Errorf("immune %v at risk %v note %q, want %v %v and a note", m.Immune, m.AtRisk, m.Note, tt.immune, tt.atRisk)
			}
		})
	}
}

func TestAddrClasses(t *testing.T) {
	for _, tt := range []struct {
		prefix  string
		valid   time.Duration
		flags   int
		inLease bool
		dynamic bool
		slaac   bool
	}{
		{"192.0.2.10/24", 100 * time.Second, 0, false, true, false},
		{"192.0.2.10/24", Forever, flagPermanent, false, false, false},
		{"2001:db8::1ca/128", 100 * time.Second, 0, false, true, false},
		{"2001:db8::5054:ff:fe12:3456/64", 86400 * time.Second, flagManageTempAdr, false, true, true},
		{"2001:db8::a1b2/64", 3600 * time.Second, flagTemporary, false, true, true},
		{"2001:db8::1ca/64", 100 * time.Second, 0, true, true, false}, // listed by a dhclient lease
		{"fe80::1/64", Forever, flagPermanent, false, false, true},
	} {
		a := Addr{Prefix: netip.MustParsePrefix(tt.prefix), Valid: tt.valid, Flags: tt.flags}
		if a.Dynamic() != tt.dynamic || a.slaac(tt.inLease) != tt.slaac {
			t.Errorf("%s flags %#x: dynamic %v slaac %v, want %v %v", tt.prefix, tt.flags, a.Dynamic(), a.slaac(tt.inLease), tt.dynamic, tt.slaac)
		}
	}
}
