package ntpserve

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/ntptool/ntptool/ntpwire"

	"golang.org/x/sys/unix"
)

// TestTransmitTimestampAccuracy measures, on loopback where client and
// server share one clock, how far each reply's transmit timestamp is from
// the kernel's receive time of that reply at the client, when requests
// arrive in bursts of 32 (so the server reads and answers batches). A
// transmit timestamp after the client's receive time would be a lie; the
// gap shows how early the stamp is. Measured for one stamp per batch of 32,
// for the default chunk, and for one stamp (and sendmmsg) per reply.
func TestTransmitTimestampAccuracy(t *testing.T) {
	for _, chunk := range []int{32, defaultTxChunk, 1} {
		t.Run(fmt.Sprintf("%d replies per stamp", chunk), func(t *testing.T) {
			s, err := New(Config{Listen: []string{"127.0.0.1:0"}, Workers: 1, DisableRateLimit: true, TxChunk: chunk}, localStratum2(t), time.Now, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			if err := s.Listen(ctx); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- s.Serve(ctx) }()
			defer func() { cancel(); <-done }()
			gaps := burstGaps(t, s.Addrs()[0], 200, 32)
			slices.Sort(gaps)
			q := func(p float64) time.Duration { return gaps[int(p*float64(len(gaps)-1))] }
			t.Logf("%d replies: client rx − server tx: min %v p50 %v p90 %v p99 %v max %v",
				len(gaps), q(0), q(0.5), q(0.9), q(0.99), q(1))
			if q(0) < 0 {
				t.Errorf("a transmit timestamp is %v after the client received the reply", -q(0))
			}
		})
	}
}

// burstGaps sends bursts of size requests and returns, per reply, the
// client's kernel receive time minus the reply's transmit timestamp.
func burstGaps(t *testing.T, addr net.Addr, bursts, size int) []time.Duration {
	t.Helper()
	c, err := net.DialUDP("udp4", nil, addr.(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc, _ := c.SyscallConn()
	rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) })
	buf, oob := make([]byte, 256), make([]byte, 128)
	var gaps []time.Duration
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for b := range bursts {
		for i := range size {
			if _, err := c.Write(mkReq(4, ModeClient, ntpwire.Timestamp(b*size+i+1))); err != nil {
				t.Fatal(err)
			}
		}
		for range size {
			n, oobn, _, _, err := c.ReadMsgUDP(buf, oob)
			if err != nil {
				t.Fatal(err)
			}
			sec, nsec, _ := parseControl(oob[:oobn])
			if n < HeaderLen || sec < 0 {
				t.Fatalf("reply %d bytes, rx timestamp %v", n, sec)
			}
			tx := ntpwire.Timestamp(binary.BigEndian.Uint64(buf[offTransmit:]))
			gaps = append(gaps, ntpwire.FromUnix(sec, nsec).Sub(tx))
		}
	}
	return gaps
}
