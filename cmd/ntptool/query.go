package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/ntptool/ntptool/ntpclient"
	"github.com/spf13/cobra"
)

// queryFlags are the flags query and check share.
type queryFlags struct {
	samples int
	timeout time.Duration
	port    int
	ipv4    bool
	ipv6    bool
}

func (f *queryFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.IntVarP(&f.samples, "samples", "n", 1, "exchanges per server address; the valid reply with the lowest delay is kept")
	fl.DurationVarP(&f.timeout, "timeout", "t", 2*time.Second, "how long to wait for each reply")
	fl.IntVarP(&f.port, "port", "p", ntpclient.DefaultPort, "server port when SERVER names none")
	fl.BoolVarP(&f.ipv4, "ipv4", "4", false, "resolve names to IPv4 addresses only")
	fl.BoolVarP(&f.ipv6, "ipv6", "6", false, "resolve names to IPv6 addresses only")
}

// options validates the flags and turns them into client options.
func (f *queryFlags) options() (ntpclient.ServersOptions, error) {
	opt := ntpclient.ServersOptions{
		Options: ntpclient.Options{Timeout: f.timeout, Port: f.port},
		Samples: f.samples,
	}
	switch {
	case f.samples < 1 || f.samples > 64:
		return opt, fmt.Errorf("--samples %d: must be 1-64", f.samples)
	case f.timeout <= 0:
		return opt, fmt.Errorf("--timeout %v: must be positive", f.timeout)
	case f.port < 1 || f.port > 65535:
		return opt, fmt.Errorf("--port %d: must be 1-65535", f.port)
	case f.ipv4 && f.ipv6:
		return opt, fmt.Errorf("-4 and -6 exclude each other")
	case f.ipv4:
		opt.Network = "ip4"
	case f.ipv6:
		opt.Network = "ip6"
	}
	return opt, nil
}

func newQueryCmd() *cobra.Command {
	var flags queryFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "query [flags] SERVER...",
		Short: "Query NTP servers and print their offsets (like ntpdate -q, sntp, chronyd -Q)",
		Long: `Query every SERVER, and every address a name resolves to, in parallel, and
print one line per address: stratum, reference ID, offset, round-trip delay,
root distance, leap indicator and a verdict. The clock is never changed.

OFFSET is the server's time minus this host's, in seconds: positive means this
host is behind. ROOT-DIST is the bound on the error of the reply: half the
round trip plus the server's root delay/2 and root dispersion.

Replies are checked before they are believed. The verdict is "ok" or why the
reply is not usable: "KoD RATE"/"KoD DENY"/"KoD RSTR" (the server asks us to
slow down or go away), "unsynchronised" (leap indicator 3), "bad stratum"
(16 or more), "origin mismatch" (not an answer to our request), "zero
transmit", "bad mode", "root distance" (over 16 s), "negative delay" (bogus
timestamps), "timeout", "refused" (nothing listens there), "malformed", or "error"
(resolution or network failure).

SERVER is "host", "host:port", "[IPv6]:port" or a bare IPv6 address.

Exit status: 0 if at least one valid reply, 1 if none, 2 on a usage error.`,
		Example: `  ntptool query pool.ntp.org
  ntptool query --samples 4 time1.example.net time2.example.net:1123 [2001:db8::123]:123
  ntptool query --json 127.0.0.1:11123 | jq '.servers[0].offset_seconds'`,
		Args: argsAtLeast(1, "SERVER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opt, err := flags.options()
			if err != nil {
				return usageError("query: %v", err)
			}
			results := ntpclient.QueryServers(cmd.Context(), args, opt)
			if asJSON {
				err = writeJSON(cmd.OutOrStdout(), results)
			} else {
				err = writeTable(cmd.OutOrStdout(), results)
			}
			if err != nil {
				return err
			}
			if countValid(results) == 0 {
				return &exitError{code: exitFailure}
			}
			return nil
		},
	}
	flags.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

func countValid(results []ntpclient.Result) int {
	n := 0
	for _, r := range results {
		if r.Err == nil {
			n++
		}
	}
	return n
}

func writeTable(w io.Writer, results []ntpclient.Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVER\tADDRESS\tST\tREFID\tOFFSET\tDELAY\tROOT-DIST\tLEAP\tVERDICT")
	for _, res := range results {
		addr := ntpclient.FormatAddress(res.Address)
		verdict := ntpclient.Verdict(res.Err)
		r := res.Response
		if r == nil {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t%s\n", res.Server, addr, verdict)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%+.6f\t%.6f\t%.6f\t%s\t%s\n", res.Server, addr, r.Stratum, r.RefID,
			r.Offset.Seconds(), r.Delay.Seconds(), r.RootDistance.Seconds(), r.Leap, verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// The reasons in full, for what the verdict column abbreviates.
	for _, res := range results {
		if res.Err != nil {
			fmt.Fprintf(w, "# %s: %v\n", res.Server, res.Err)
		}
	}
	return nil
}

// jsonServer is one element of the --json output. Its keys are a contract:
// scripts read them.
type jsonServer struct {
	Server                string   `json:"server"`
	Address               string   `json:"address"`
	Valid                 bool     `json:"valid"`
	Verdict               string   `json:"verdict"`
	Error                 string   `json:"error,omitempty"`
	Stratum               *int     `json:"stratum,omitempty"`
	RefID                 string   `json:"refid,omitempty"`
	Leap                  string   `json:"leap,omitempty"`
	Version               *int     `json:"version,omitempty"`
	OffsetSeconds         *float64 `json:"offset_seconds,omitempty"`
	DelaySeconds          *float64 `json:"delay_seconds,omitempty"`
	RootDelaySeconds      *float64 `json:"root_delay_seconds,omitempty"`
	RootDispersionSeconds *float64 `json:"root_dispersion_seconds,omitempty"`
	RootDistanceSeconds   *float64 `json:"root_distance_seconds,omitempty"`
	Replies               int      `json:"replies"`
}

func writeJSON(w io.Writer, results []ntpclient.Result) error {
	out := struct {
		Servers []jsonServer `json:"servers"`
		Valid   int          `json:"valid"`
	}{Servers: []jsonServer{}, Valid: countValid(results)}
	for _, res := range results {
		s := jsonServer{
			Server:  res.Server,
			Address: ntpclient.FormatAddress(res.Address),
			Valid:   res.Err == nil,
			Verdict: ntpclient.Verdict(res.Err),
			Replies: res.Replies,
		}
		if res.Err != nil {
			s.Error = res.Err.Error()
		}
		if r := res.Response; r != nil {
			seconds := func(d time.Duration) *float64 { v := d.Seconds(); return &v }
			s.Stratum, s.Version = &r.Stratum, &r.Version
			s.RefID, s.Leap = r.RefID, r.Leap.String()
			s.OffsetSeconds, s.DelaySeconds = seconds(r.Offset), seconds(r.Delay)
			s.RootDelaySeconds, s.RootDispersionSeconds = seconds(r.RootDelay), seconds(r.RootDispersion)
			s.RootDistanceSeconds = seconds(r.RootDistance)
		}
		out.Servers = append(out.Servers, s)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
