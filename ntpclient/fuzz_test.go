package ntpclient

import (
	"context"
	"encoding/binary"
	"math"
	"net"
	"os"
	"testing"
	"time"

	"github.com/ntptool/ntptool/ntpwire"
)

// replayConn is a net.Conn that answers the request with canned bytes,
// optionally patched so the origin timestamp matches the request.
type replayConn struct {
	reply       []byte
	patchOrigin bool
	request     []byte
}

func (c *replayConn) Write(b []byte) (int, error) {
	c.request = append([]byte(nil), b...)
	return len(b), nil
}
func (c *replayConn) Read(b []byte) (int, error) {
	if c.reply == nil {
		return 0, os.ErrDeadlineExceeded
	}
	n := copy(b, c.reply)
	if c.patchOrigin && n >= 32 && len(c.request) >= 48 {
		copy(b[24:32], c.request[40:48])
	}
	c.reply = nil
	return n, nil
}
func (c *replayConn) Close() error                     { return nil }
func (c *replayConn) LocalAddr() net.Addr              { return &net.UDPAddr{} }
func (c *replayConn) RemoteAddr() net.Addr             { return &net.UDPAddr{} }
func (c *replayConn) SetDeadline(time.Time) error      { return nil }
func (c *replayConn) SetReadDeadline(time.Time) error  { return nil }
func (c *replayConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzReply feeds arbitrary bytes to the client as a server's reply: it must
// never panic, and whatever it accepts as valid must pass Validate and look
// like a synchronised server.
func FuzzReply(f *testing.F) {
	valid := make([]byte, 48)
	valid[0], valid[1], valid[2], valid[3] = 0x24, 2, 6, 0xec
	copy(valid[12:], []byte{127, 127, 1, 1})
	for i := 32; i < 48; i++ {
		valid[i] = 0xe0 // 2019-ish timestamps
	}
	f.Add(valid, true)
	f.Add(valid[:47], true)
	f.Add(append(append([]byte{}, valid...), make([]byte, 20)...), true)
	kod := append([]byte{}, valid...)
	kod[0], kod[1] = 0xe4, 0
	copy(kod[12:], "RATE")
	f.Add(kod, true)
	f.Add(valid, false)
	f.Fuzz(func(t *testing.T, reply []byte, patchOrigin bool) {
		conn := &replayConn{reply: reply, patchOrigin: patchOrigin}
		resp, err := Query(context.Background(), "192.0.2.1:123", Options{
			Timeout: time.Second,
			Dialer:  func(string, string) (net.Conn, error) { return conn, nil },
		})
		if err != nil {
			return
		}
		if verr := Validate(resp); verr != nil {
			t.Fatalf("Query accepted a reply that Validate rejects: %v", verr)
		}
		if resp.Stratum < 1 || resp.Stratum > 15 || resp.Leap == LeapUnsynchronized || resp.Mode != modeServer {
			t.Fatalf("accepted an unsynchronised reply: %+v", resp)
		}
	})
}

// FuzzSplitHostPort: never panics; an accepted address has a host and a
// port in range.
func FuzzSplitHostPort(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "[::1]:123", "::1", "host:123", "", ":", "[", "[::1", "a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, port, err := SplitHostPort(s, 0)
		if err == nil && (host == "" || port < 1 || port > 65535) {
			t.Fatalf("SplitHostPort(%q) = %q, %d", s, host, port)
		}
	})
}

// FuzzParseReply: the engine's reply parser never panics, and what it
// accepts is a valid, synchronised server reply with a finite sample.
func FuzzParseReply(f *testing.F) {
	t1 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	const cookie = 0x0123456789abcdef
	req := Request(nil, cookie)
	valid := make([]byte, 48)
	valid[0], valid[1] = 0x24, 2
	copy(valid[24:32], req[40:48])
	stamp := ntpwire.FromTime(t1)
	binary.BigEndian.PutUint64(valid[32:], uint64(stamp))
	binary.BigEndian.PutUint64(valid[40:], uint64(stamp))
	f.Add(valid, int64(1e6))
	f.Add(valid[:40], int64(0))
	f.Add(append(valid, make([]byte, 100)...), int64(-5))
	f.Fuzz(func(t *testing.T, pkt []byte, rttNS int64) {
		s, err := ParseReply(pkt, cookie, t1, t1.Add(time.Duration(rttNS)))
		if err != nil {
			return
		}
		if verr := Validate(s.Response); verr != nil {
			t.Fatalf("accepted a reply that Validate rejects: %v", verr)
		}
		if math.IsNaN(s.OffsetS) || math.IsInf(s.OffsetS, 0) || s.DelayS < 0 {
			t.Fatalf("accepted a bad sample %+v", s)
		}
	})
}
