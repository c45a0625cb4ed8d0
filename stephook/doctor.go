package stephook

import (
	"context"
	"encoding/json"
	"net/netip"
	"time"

	"github.com/ntptool/ntptool/config"
)

// AddrReport is the lease doctor's finding for one dynamic address.
type AddrReport struct {
	Interface string
	Address   netip.Prefix
	// Valid and Preferred are the kernel's remaining lifetimes.
	Valid, Preferred time.Duration
	// SLAAC is true for an IPv6 address made from router advertisements:
	// no DHCP client renews it and the kernel ages it in monotonic time.
	SLAAC bool
	// Client is the DHCP client that manages it ("" if none was found),
	// with its PID, its DHCP backend (NetworkManager), and its files.
	Client    ClientKind
	PID       int
	Backend   string
	LeaseFile string
	PIDFile   string
	// Lease is the client's current lease for the address (dhclient), nil
	// if unknown.
	Lease *Lease
	// Margin is the verdict: the steps the address survives without
	// ntptool's hooks.
	Margin Margin
	// Covered is true when one of ntptool's renewers is switched on for
	// the client, so that the daemon's steps renew it before and after.
	Covered bool
}

// Leases runs the lease doctor with the configuration's renewers (for
// Covered); see (*Runner).Leases.
func Leases(ctx context.Context, cfg config.Hooks, opt Options) ([]AddrReport, error) {
	r, err := New(cfg, opt)
	if err != nil {
		return nil, err
	}
	return r.Leases(ctx)
}

// Leases reports every dynamic address of this network namespace: its
// lifetimes, the client and lease that manage it, and how large a step it
// survives without the hooks.
func (r *Runner) Leases(ctx context.Context) ([]AddrReport, error) {
	all, err := r.sys.addrs()
	if err != nil {
		return nil, err
	}
	clients, err := detect(ctx, r.sys, all)
	if err != nil {
		return nil, err
	}
	now := r.sys.now()
	nm := map[string]nmDevice{}
	var out []AddrReport
	for _, a := range all {
		if !a.Dynamic() {
			continue
		}
		rep := AddrReport{Interface: a.Interface, Address: a.Prefix, Valid: a.Valid, Preferred: a.Preferred}
		c := owner(ctx, r.sys, clients, a, nm)
		var j *job
		if c != nil {
			j = &job{c: c, leases: map[string]Lease{}}
			r.loadLease(j, a)
			rep.Lease = j.lease(a)
		}
		if a.slaac(rep.Lease != nil) {
			rep.SLAAC = true
			rep.Margin = Margin{Immune: true, Note: "SLAAC address: the kernel ages it in monotonic time; no DHCP client is involved"}
			out = append(out, rep)
			continue
		}
		if c != nil {
			rep.Client, rep.PID, rep.Backend = c.kind, c.proc.PID, c.backend
			rep.LeaseFile, rep.PIDFile = c.leaseFile, c.pidFile
			rep.Covered = r.kinds[c.kind]
		}
		rep.Margin = stepMargin(rep.Client, rep.Backend, a, rep.Lease, now)
		out = append(out, rep)
	}
	return out, nil
}

func optSeconds(d *time.Duration) *float64 {
	if d == nil {
		return nil
	}
	s := d.Seconds()
	return &s
}

func optTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339)
	return &s
}

// MarshalJSON writes the keys of `ntptool lease --json` (a contract):
// interface, address, family, valid_lft_seconds, preferred_lft_seconds,
// slaac, client, pid, backend, lease_file, pid_file, lease (null, or
// address, lease_time_seconds, preferred_life_seconds, renew, rebind,
// expire: RFC 3339 or null) and verdict (max_backward_step_seconds,
// max_forward_step_seconds: null for no limit; immune, at_risk, covered,
// note).
func (a AddrReport) MarshalJSON() ([]byte, error) {
	type leaseJSON struct {
		Address       string  `json:"address"`
		LeaseTime     float64 `json:"lease_time_seconds"`
		PreferredLife float64 `json:"preferred_life_seconds"`
		Renew         *string `json:"renew"`
		Rebind        *string `json:"rebind"`
		Expire        *string `json:"expire"`
	}
	type verdictJSON struct {
		MaxBackward *float64 `json:"max_backward_step_seconds"`
		MaxForward  *float64 `json:"max_forward_step_seconds"`
		Immune      bool     `json:"immune"`
		AtRisk      bool     `json:"at_risk"`
		Covered     bool     `json:"covered"`
		Note        string   `json:"note"`
	}
	var lease *leaseJSON
	if l := a.Lease; l != nil {
		lease = &leaseJSON{l.Address.String(), l.LeaseTime.Seconds(), l.PreferredLife.Seconds(),
			optTime(l.Renew), optTime(l.Rebind), optTime(l.Expire)}
	}
	family := "ipv4"
	if a.Address.Addr().Is6() {
		family = "ipv6"
	}
	return json.Marshal(struct {
		Interface string      `json:"interface"`
		Address   string      `json:"address"`
		Family    string      `json:"family"`
		Valid     int64       `json:"valid_lft_seconds"`
		Preferred int64       `json:"preferred_lft_seconds"`
		SLAAC     bool        `json:"slaac"`
		Client    string      `json:"client"`
		PID       int         `json:"pid"`
		Backend   string      `json:"backend"`
		LeaseFile string      `json:"lease_file"`
		PIDFile   string      `json:"pid_file"`
		Lease     *leaseJSON  `json:"lease"`
		Verdict   verdictJSON `json:"verdict"`
	}{a.Interface, a.Address.String(), family, seconds(a.Valid), seconds(a.Preferred), a.SLAAC,
		string(a.Client), a.PID, a.Backend, a.LeaseFile, a.PIDFile, lease,
		verdictJSON{optSeconds(a.Margin.MaxBackward), optSeconds(a.Margin.MaxForward), a.Margin.Immune, a.Margin.AtRisk, a.Covered, a.Margin.Note}})
}
