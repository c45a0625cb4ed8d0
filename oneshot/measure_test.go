package oneshot

import (
	"errors"
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/ntptool/ntptool/ntpclient"
)

// reply is a valid result: the server's time minus ours, the delay.
func reply(name string, offset, delay time.Duration) ntpclient.Result {
	return ntpclient.Result{Server: name, Address: netip.MustParseAddrPort("192.0.2.1:123"), Replies: 1,
		Response: &ntpclient.Response{Offset: offset, Delay: delay, RootDistance: delay / 2}}
}

func TestMeasure(t *testing.T) {
	ms := time.Millisecond
	timeout := ntpclient.Result{Server: "t", Err: ntpclient.ErrTimeout}
	for _, tt := range []struct {
		name    string
		in      []ntpclient.Result
		wantErr error
		roles   []Role
		offset  time.Duration // within 100 µs
	}{
		{"one server decides alone", []ntpclient.Result{reply("a", 2*time.Second, ms)}, nil, []Role{RoleCombined}, 2 * time.Second},
		{"three agree", []ntpclient.Result{reply("a", 10*ms, ms), reply("b", 10*ms+200*time.Microsecond, ms), reply("c", 10*ms-100*time.Microsecond, ms)},
			nil, []Role{RoleCombined, RoleCombined, RoleCombined}, 10 * ms},
		{"the liar is out", []ntpclient.Result{reply("a", 0, ms), reply("liar", time.Hour, ms), reply("c", 0, ms)},
			nil, []Role{RoleCombined, RoleFalseticker, RoleCombined}, 0},
		{"two against two", []ntpclient.Result{reply("a", 0, ms), reply("b", 0, ms), reply("c", time.Hour, ms), reply("d", time.Hour, ms)},
			ErrNoMajority, []Role{RoleFalseticker, RoleFalseticker, RoleFalseticker, RoleFalseticker}, 0},
		{"timeouts do not vote", []ntpclient.Result{timeout, reply("a", 5*time.Second, ms), timeout},
			nil, []Role{RoleNoVote, RoleCombined, RoleNoVote}, 5 * time.Second},
		{"nothing valid", []ntpclient.Result{timeout, {Server: "x"}}, ErrNoReply, []Role{RoleNoVote, RoleNoVote}, 0},
		{"nothing at all", nil, ErrNoReply, nil, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Measure(tt.in)
			if !errors.Is(err, tt.wantErr) || tt.wantErr == nil && err != nil {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			var roles []Role
			for _, s := range m.Sources {
				roles = append(roles, s.Role)
				if s.Role == RoleNoVote && s.Err == nil {
					t.Errorf("%s: no vote, no reason", s.Server)
				}
			}
			if !slices.Equal(roles, tt.roles) {
				t.Errorf("roles %v, want %v", roles, tt.roles)
			}
			if err == nil && math.Abs((m.Offset-tt.offset).Seconds()) > 100e-6 {
				t.Errorf("offset %v, want %v", m.Offset, tt.offset)
			}
			if err == nil && (m.Sigma <= 0 || m.Sigma > ms) {
				t.Errorf("sigma %v", m.Sigma)
			}
		})
	}
}
