package ntpserve

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/ntptool/ntptool/internal/peers"
)

// TestInteropClients: real third-party clients query an in-process server
// and must report stratum 2 and |offset| < 5 ms. chronyd -Q talks to any
// port on loopback; ntpdig only to port 123, so that server listens inside
// a network namespace this test creates (its sockets are opened on a thread
// that entered the namespace).
func TestInteropClients(t *testing.T) {
	root := peers.Root(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	lo := startServer(t, Config{Listen: []string{"127.0.0.1:0"}}, localStratum2(t))
	loAddr := lo.Addrs()[0].(*net.UDPAddr)

	ns := peers.NewNetns(t)
	nsSrv, err := New(Config{Listen: []string{"127.0.0.1:123"}}, localStratum2(t), time.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Do(func() error { return nsSrv.Listen(ctx) }); err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- nsSrv.Serve(sctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("Serve in netns: %v", err)
		}
	})

	tests := []struct {
		name  string
		query func() (peers.Result, error)
	}{
		{"chronyd -Q", func() (peers.Result, error) { return peers.ChronydQuery(ctx, root, "127.0.0.1", loAddr.Port) }},
		{"ntpdig (netns, port 123)", func() (peers.Result, error) { return peers.Ntpdig(ctx, root, ns, "127.0.0.1") }},
		{"beevik/ntp", func() (peers.Result, error) { return peers.Beevik(loAddr.String(), nil) }},
		{"beevik/ntp (netns, port 123)", func() (peers.Result, error) { return peers.Beevik("127.0.0.1:123", ns) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.query()
			got.Check(t, err, 2)
		})
	}
	if s := lo.Stats().Snapshot(); s.Replies == 0 || s.Dropped() != 0 {
		t.Errorf("loopback server stats %+v", s)
	}
}
