package ntpserve

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ntptool/ntptool/ntpwire"
)

func TestRefIDFor(t *testing.T) {
	tests := []struct {
		addr string
		want uint32
	}{
		{"192.0.2.7", 0xc0000207},
		{"::ffff:192.0.2.7", 0xc0000207},
		// The first four octets of MD5 over the 16 address bytes
		// (computed with Python's hashlib).
		{"::1", 0xcf404dc8},
		{"2001:db8::123", 0xc975cecc},
		{"", LocalRefID},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			var a netip.Addr
			if tc.addr != "" {
				a = netip.MustParseAddr(tc.addr)
			}
			if got := RefIDFor(a); got != tc.want {
				t.Errorf("RefIDFor(%s) = %#08x, want %#08x", tc.addr, got, tc.want)
			}
		})
	}
}

func TestUpstreamState(t *testing.T) {
	synced := Upstream{
		Synchronized: true, Source: netip.MustParseAddr("192.0.2.1"), SourceStratum: 2,
		SourceRootDelay: 10 * time.Millisecond, SourceRootDispersion: 3 * time.Millisecond,
		Delay: 2 * time.Millisecond, Dispersion: 500 * time.Microsecond, RefTime: t2026, Precision: -22,
	}
	with := func(f func(*Upstream)) Upstream { u := synced; f(&u); return u }
	ref := ntpwire.FromTime(t2026)
	unsync := State{Leap: LeapUnsynch, Stratum: MaxStratum, RootDispersion: 16 * time.Second, Precision: -22}
	tests := []struct {
		name string
		u    Upstream
		want State
	}{
		{"synchronised to an IPv4 stratum 2 server", synced,
			State{Stratum: 3, RefID: 0xc0000201, RefTime: ref, RootDelay: 12 * time.Millisecond, RootDispersion: 3500 * time.Microsecond, DispersionRatePPM: 15, Precision: -22}},
		{"IPv6 source: MD5 refid", with(func(u *Upstream) { u.Source = netip.MustParseAddr("::1") }),
			State{Stratum: 3, RefID: 0xcf404dc8, RefTime: ref, RootDelay: 12 * time.Millisecond, RootDispersion: 3500 * time.Microsecond, DispersionRatePPM: 15, Precision: -22}},
		{"leap second insertion announced", with(func(u *Upstream) { u.Leap = 1 }),
			State{Leap: LeapInsert, Stratum: 3, RefID: 0xc0000201, RefTime: ref, RootDelay: 12 * time.Millisecond, RootDispersion: 3500 * time.Microsecond, DispersionRatePPM: 15, Precision: -22}},
		{"deletion", with(func(u *Upstream) { u.Leap = -1 }),
			State{Leap: LeapDelete, Stratum: 3, RefID: 0xc0000201, RefTime: ref, RootDelay: 12 * time.Millisecond, RootDispersion: 3500 * time.Microsecond, DispersionRatePPM: 15, Precision: -22}},
		{"our dispersion is at least the precision; negative inputs count as 0",
			with(func(u *Upstream) { u.Dispersion, u.Delay, u.SourceRootDelay = 0, -time.Second, -time.Second }),
			State{Stratum: 3, RefID: 0xc0000201, RefTime: ref, RootDispersion: 3*time.Millisecond + precisionDuration(-22), DispersionRatePPM: 15, Precision: -22}},
		{"unsynchronised: leap 3, stratum 16", with(func(u *Upstream) { u.Synchronized = false }), unsync},
		{"source at stratum 15: we would be 16", with(func(u *Upstream) { u.SourceStratum = 15 }), unsync},
		{"source stratum unknown (0)", with(func(u *Upstream) { u.SourceStratum = 0 }), unsync},
		{"unsynchronised with a local stratum (isolated LAN)", with(func(u *Upstream) { u.Synchronized, u.LocalStratum = false, 8 }),
			State{Stratum: 8, RefID: LocalRefID, RefTime: ref, RootDispersion: precisionDuration(-22), DispersionRatePPM: 15, Precision: -22}},
		{"synchronised wins over the local stratum", with(func(u *Upstream) { u.LocalStratum = 8 }),
			State{Stratum: 3, RefID: 0xc0000201, RefTime: ref, RootDelay: 12 * time.Millisecond, RootDispersion: 3500 * time.Microsecond, DispersionRatePPM: 15, Precision: -22}},
		{"bad local stratum serves unsynchronised", with(func(u *Upstream) { u.Synchronized, u.LocalStratum = false, 16 }), unsync},
		{"default precision", Upstream{}, State{Leap: LeapUnsynch, Stratum: MaxStratum, RootDispersion: 16 * time.Second, Precision: DefaultPrecision}},
		{"no source address (reference clock)", with(func(u *Upstream) { u.Source = netip.Addr{} }),
			State{Stratum: 3, RefID: LocalRefID, RefTime: ref, RootDelay: 12 * time.Millisecond, RootDispersion: 3500 * time.Microsecond, DispersionRatePPM: 15, Precision: -22}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, UpstreamState(tc.u)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// The state reaches the wire: a reply built from it carries stratum,
// refid and leap, and its dispersion grows with the age of RefTime.
func TestUpstreamStateOnTheWire(t *testing.T) {
	var a AtomicState
	a.Store(UpstreamState(Upstream{Synchronized: true, Leap: 1, Source: netip.MustParseAddr("2001:db8::123"), SourceStratum: 1, RefTime: t2026, Precision: -20}))
	req := mkReq(4, ModeClient, 0x1234)
	out := make([]byte, HeaderLen)
	rx := ntpwire.FromTime(t2026.Add(100 * time.Second))
	n, v := Respond(out, req, rx, rx, a.State())
	if v != Reply || n != HeaderLen {
		t.Fatalf("verdict %v, %d bytes", v, n)
	}
	f := decode(out)
	if f.Stratum != 2 || f.RefID != 0xc975cecc || f.Leap != LeapInsert {
		t.Errorf("stratum %d refid %#x leap %d", f.Stratum, f.RefID, f.Leap)
	}
	// 100 s at 15 ppm = 1.5 ms on top of the precision's 1 µs.
	if got := ntpwire.ShortToDuration(f.RootDisp); got < 1400*time.Microsecond || got > 1600*time.Microsecond {
		t.Errorf("root dispersion %v after 100 s, want about 1.5 ms", got)
	}
}
