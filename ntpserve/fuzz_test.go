package ntpserve

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/ntptool/ntptool/ntpwire"
)

// FuzzParseRequest: ParseRequest accepts any bytes; what it accepts is a
// client request of versions 1–4 with its transmit timestamp read right;
// the reply Respond builds is never larger than the request and echoes its
// version and transmit timestamp.
func FuzzParseRequest(f *testing.F) {
	f.Add(mkReq(4, ModeClient, 0x1122334455667788))
	f.Add(mkReq(3, ModeClient, 1))
	f.Add(mkReq(1, ModeReserved, 1))
	f.Add(mkReq(2, ModePrivate, 0, make([]byte, 144)...))
	f.Add(mkReq(2, ModeControl, 0))
	f.Add(mkReq(4, ModeClient, 1, ef(0x0104, 36)...))
	f.Add(mkReq(4, ModeClient, 1, cat(ef(0x0104, 16), ef(0x0204, 104))...))
	f.Add(mkReq(4, ModeClient, 1, make([]byte, 20)...))
	f.Add(mkReq(4, ModeClient, 1)[:47])
	st := &State{Stratum: 2, RefID: LocalRefID, Precision: -20, RootDispersion: time.Millisecond, DispersionRatePPM: 15}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, v := ParseRequest(b)
		out := make([]byte, HeaderLen)
		n, v2 := Respond(out, b, 1<<32, 2<<32, st)
		if v != v2 {
			t.Fatalf("ParseRequest %v, Respond %v", v, v2)
		}
		if n > len(b) {
			t.Fatalf("reply %d bytes > request %d bytes", n, len(b))
		}
		if v != Reply {
			if n != 0 {
				t.Fatalf("verdict %v but %d bytes written", v, n)
			}
			return
		}
		mode := b[0] & 7
		if len(b) < HeaderLen || r.Version < 1 || r.Version > 4 || !(mode == ModeClient || (mode == 0 && r.Version == 1)) {
			t.Fatalf("accepted %x as %+v", b, r)
		}
		got := decode(out)
		if got.Org != ntpwire.Timestamp(binary.BigEndian.Uint64(b[40:])) || got.Version != r.Version || got.Mode != ModeServer {
			t.Fatalf("reply %+v to %x", got, b)
		}
	})
}

// TestReplyNeverLarger runs a corpus of 300 000 mutated packets (random
// lengths 0–200, random header bits, random trailers) from random
// addresses through the whole policy and checks every reply is at most as
// long as its request: the server cannot amplify.
func TestReplyNeverLarger(t *testing.T) {
	s := newTestServer(t, Config{DenyKoD: true, Deny: []string{"10.0.0.0/9"},
		RateLimit: RateLimitConfig{Interval: time.Second, Burst: 2, KoD: true, TableSize: 1024}})
	st := &State{Stratum: 2}
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([]byte, HeaderLen)
	seeds := [][]byte{mkReq(4, ModeClient, 5), mkReq(3, ModeClient, 5), mkReq(4, ModeClient, 5, ef(1, 28)...), mkReq(2, ModePrivate, 0)}
	counts := map[Verdict]int{}
	for i := range 300_000 {
		var b []byte
		if i%2 == 0 {
			b = make([]byte, rng.IntN(200))
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
		} else {
			b = append([]byte(nil), seeds[rng.IntN(len(seeds))]...)
			b[0] = byte(rng.Uint32()) // random leap/version/mode
			if rng.IntN(3) == 0 {
				b = append(b, make([]byte, rng.IntN(80))...)
			}
		}
		a := netip.AddrFrom4([4]byte{10, byte(rng.IntN(256)), 0, byte(rng.IntN(4))})
		n, v := s.handle(out, b, a, 0, int64(i)*1000, st)
		counts[v]++
		if n > len(b) || (n > 0) != v.Answered() {
			t.Fatalf("%d-byte request %x: %d-byte reply, verdict %v", len(b), b, n, v)
		}
	}
	t.Logf("verdicts: %v", counts)
	for _, v := range []Verdict{Reply, KoDRate, KoDDeny, DropShort, DropVersion, DropMode, DropDenied, DropRate} {
		if counts[v] == 0 {
			t.Errorf("corpus never produced %v", v)
		}
	}
}
