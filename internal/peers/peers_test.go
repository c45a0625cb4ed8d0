package peers

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"
)

// The helpers themselves: each third-party client must see each
// third-party server at stratum 2 with a near-zero offset (same clock).
func TestPeersSeeEachOther(t *testing.T) {
	root := Root(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	chrony := StartChronyServer(t)
	host, portStr, _ := net.SplitHostPort(chrony)
	port, _ := strconv.Atoi(portStr)
	ns := NewNetns(t)
	StartNTPsecServer(t, ns)

	tests := []struct {
		name  string
		query func() (Result, error)
	}{
		{"chronyd -Q → chronyd", func() (Result, error) { return ChronydQuery(ctx, root, host, port) }},
		{"ntpdig → ntpd (netns)", func() (Result, error) { return Ntpdig(ctx, root, ns, "127.0.0.1") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.query()
			got.Check(t, err, 2)
		})
	}
}
