package ntpclient

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// ntpTime encodes t as a 64-bit NTP timestamp (era 0).
func ntpTime(t time.Time) uint64 {
	d := t.Sub(time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC))
	sec := uint64(d / time.Second)
	frac := (uint64(d%time.Second) << 32) / uint64(time.Second)
	return sec<<32 | frac
}

// forgeServer answers every request on a loopback socket with a valid
// stratum-2 reply, then lets forge modify it (forge may return false to
// send nothing). It stops when the test ends.
func forgeServer(t *testing.T, forge func(reply []byte) bool) string {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 1024)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 48 {
				continue
			}
			now := time.Now() // the fake server's clock: the same as ours
			reply := make([]byte, 48)
			reply[0] = 0<<6 | 4<<3 | 4                         // leap 0, version 4, mode 4
			reply[1] = 2                                       // stratum
			reply[2] = 6                                       // poll
			reply[3] = 0xec                                    // precision 2^-20
			binary.BigEndian.PutUint32(reply[4:], 0x00000010)  // root delay ~0.24 ms
			binary.BigEndian.PutUint32(reply[8:], 0x00000020)  // root dispersion ~0.49 ms
			binary.BigEndian.PutUint32(reply[12:], 0x7f7f0101) // refid 127.127.1.1
			binary.BigEndian.PutUint64(reply[16:], ntpTime(now.Add(-time.Minute)))
			copy(reply[24:32], buf[40:48]) // origin = request's transmit
			binary.BigEndian.PutUint64(reply[32:], ntpTime(now))
			binary.BigEndian.PutUint64(reply[40:], ntpTime(now))
			if forge != nil && !forge(reply) {
				continue
			}
			if _, err := conn.WriteTo(reply, from); err != nil {
				return
			}
		}
	}()
	return conn.LocalAddr().String()
}

func kod(code string) func([]byte) bool {
	return func(r []byte) bool {
		r[0] = 3<<6 | 4<<3 | 4
		r[1] = 0
		copy(r[12:16], code)
		return true
	}
}

func TestQueryValidation(t *testing.T) {
	tests := []struct {
		name    string
		forge   func([]byte) bool
		wantErr error
		wantKoD string
		verdict string
	}{
		{name: "valid", verdict: "ok"},
		{name: "KoD RATE", forge: kod("RATE"), wantErr: ErrKissOfDeath, wantKoD: "RATE", verdict: "KoD RATE"},
		{name: "KoD DENY", forge: kod("DENY"), wantErr: ErrKissOfDeath, wantKoD: "DENY", verdict: "KoD DENY"},
		{name: "KoD RSTR", forge: kod("RSTR"), wantErr: ErrKissOfDeath, wantKoD: "RSTR", verdict: "KoD RSTR"},
		{name: "leap 3", forge: func(r []byte) bool { r[0] |= 3 << 6; return true },
			wantErr: ErrUnsynchronized, verdict: "unsynchronised"},
		{name: "stratum 16", forge: func(r []byte) bool { r[1] = 16; return true },
			wantErr: ErrBadStratum, verdict: "bad stratum"},
		{name: "stratum 0 without leap 3 is a KoD too", forge: func(r []byte) bool { r[1] = 0; copy(r[12:], "INIT"); return true },
			wantErr: ErrKissOfDeath, wantKoD: "INIT", verdict: "KoD INIT"},
		{name: "origin mismatch", forge: func(r []byte) bool { r[24] ^= 0xff; return true },
			wantErr: ErrOriginMismatch, verdict: "origin mismatch"},
		{name: "zero transmit", forge: func(r []byte) bool { clear(r[40:48]); return true },
			wantErr: ErrZeroTransmit, verdict: "zero transmit"},
		{name: "mode 3 reply", forge: func(r []byte) bool { r[0] = r[0]&^7 | 3; return true },
			wantErr: ErrBadMode, verdict: "bad mode"},
		{name: "root dispersion 20 s", forge: func(r []byte) bool {
			binary.BigEndian.PutUint32(r[8:], 20<<16)
			return true
		}, wantErr: ErrRootDistance, verdict: "root distance"},
		{name: "server transmits 10 s after it received", forge: func(r []byte) bool {
			binary.BigEndian.PutUint64(r[40:], binary.BigEndian.Uint64(r[32:])+10<<32)
			return true
		}, wantErr: ErrNegativeDelay, verdict: "negative delay"},
		{name: "no reply", forge: func([]byte) bool { return false }, wantErr: ErrTimeout, verdict: "timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := forgeServer(t, tc.forge)
			resp, err := Query(context.Background(), addr, Options{Timeout: 300 * time.Millisecond})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Query error = %v, want %v", err, tc.wantErr)
			}
			if got := Verdict(err); got != tc.verdict {
				t.Errorf("Verdict = %q, want %q", got, tc.verdict)
			}
			var k *KissError
			if tc.wantKoD != "" && (!errors.As(err, &k) || k.Code != tc.wantKoD) {
				t.Errorf("kiss code: got %v, want %s", err, tc.wantKoD)
			}
			if err == nil {
				if resp.Stratum != 2 || resp.RefID != "127.127.1.1" || resp.Leap != LeapNone {
					t.Errorf("got stratum %d refid %s leap %v, want 2 127.127.1.1 none", resp.Stratum, resp.RefID, resp.Leap)
				}
				if resp.Offset.Abs() > 5*time.Millisecond || resp.Delay < 0 || resp.Delay > 50*time.Millisecond {
					t.Errorf("offset %v delay %v: want |offset| < 5 ms, 0 <= delay < 50 ms", resp.Offset, resp.Delay)
				}
			}
			// A reply that arrived is returned for display, with its reason.
			undecoded := tc.wantErr == ErrTimeout || tc.wantErr == ErrOriginMismatch || tc.wantErr == ErrZeroTransmit || tc.wantErr == ErrBadMode
			if tc.wantErr != nil && !undecoded && resp == nil {
				t.Errorf("invalid reply not returned for display")
			}
		})
	}
}

func TestSplitHostPort(t *testing.T) {
	tests := []struct {
		in       string
		host     string
		port     int
		wantFail bool
	}{
		{in: "127.0.0.1", host: "127.0.0.1", port: 123},
		{in: "127.0.0.1:11123", host: "127.0.0.1", port: 11123},
		{in: "::1", host: "::1", port: 123},
		{in: "[::1]", host: "::1", port: 123},
		{in: "[::1]:11123", host: "::1", port: 11123},
		{in: "time.example.net", host: "time.example.net", port: 123},
		{in: "time.example.net:4123", host: "time.example.net", port: 4123},
		{in: "", wantFail: true},
		{in: "host:0", wantFail: true},
		{in: "host:70000", wantFail: true},
		{in: "host:ntp", wantFail: true},
		{in: ":123", wantFail: true},
		{in: "[::1]:x", wantFail: true},
		{in: "[::1", wantFail: true},
		{in: "::1]", wantFail: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			host, port, err := SplitHostPort(tc.in, 0)
			if tc.wantFail {
				if err == nil {
					t.Fatalf("SplitHostPort(%q) = %q, %d; want an error", tc.in, host, port)
				}
				return
			}
			if err != nil || host != tc.host || port != tc.port {
				t.Fatalf("SplitHostPort(%q) = %q, %d, %v; want %q, %d", tc.in, host, port, err, tc.host, tc.port)
			}
		})
	}
}

func TestQueryServersKeepsLowestDelayAndStopsOnKoD(t *testing.T) {
	var n atomic.Int32
	slowFirst := forgeServer(t, func(r []byte) bool {
		if n.Add(1) == 1 { // the first reply claims a 100 ms turnaround inside the server
			binary.BigEndian.PutUint64(r[32:], binary.BigEndian.Uint64(r[32:])-uint64(429496729)) // -0.1 s
		}
		return true
	})
	var kods atomic.Int32
	rate := forgeServer(t, func(r []byte) bool { kods.Add(1); return kod("RATE")(r) })
	results := QueryServers(context.Background(), []string{slowFirst, rate, "bad:address:x"}, ServersOptions{
		Options: Options{Timeout: time.Second},
		Samples: 3,
	})
	if len(results) != 3 {
		t.Fatalf("got %d results, want 3", len(results))
	}
	if r := results[0]; r.Err != nil || r.Replies != 3 || r.Response.Delay > 90*time.Millisecond {
		t.Errorf("lowest-delay sample not kept: err %v replies %d delay %v", r.Err, r.Replies, r.Response.Delay)
	}
	if r := results[1]; !errors.Is(r.Err, ErrKissOfDeath) || r.Replies != 1 || kods.Load() != 1 {
		t.Errorf("KoD must end the samples: err %v replies %d requests %d", r.Err, r.Replies, kods.Load())
	}
	if r := results[2]; r.Err == nil || r.Address.IsValid() {
		t.Errorf("bad address: got %+v, want an error", r)
	}
}
