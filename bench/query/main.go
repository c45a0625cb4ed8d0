// Command query times one whole `ntptool query` process against the
// whole-process one-shot clients of chrony (`chronyd -Q`) and NTPsec
// (`ntpdig`), on loopback, in the same run, and prints the ratios.
//
// ntpdig speaks only to port 123, so the benchmark makes a network
// namespace, starts `chronyd -x` there on 127.0.0.1:123 as the one server
// all three clients query, and re-executes itself inside the namespace to
// time the clients. Every client runs with CAP_SYS_TIME removed (the same
// setpriv wrapper for all three, so the comparison is fair); chronyd -Q
// never sets the clock anyway. Runs are interleaved round-robin so that
// machine noise hits all clients alike.
//
// Usage: go run ./bench/query -ntptool bin/ntptool [-runs 20]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ntptool/ntptool/internal/peers"
)

func main() {
	bin := flag.String("ntptool", "bin/ntptool", "the ntptool binary to time")
	runs := flag.Int("runs", 20, "runs per client (1-200)")
	inner := flag.String("inner", "", "internal: the peers root; time the clients in this namespace")
	flag.Parse()
	if *runs < 1 || *runs > 200 {
		fmt.Fprintln(os.Stderr, "-runs must be 1-200")
		os.Exit(2)
	}
	abs, err := filepath.Abs(*bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if *inner != "" {
		os.Exit(timeClients(*inner, abs, *runs))
	}
	os.Exit(outer(abs, *runs))
}

// outer sets up the namespace and the server, then times from inside.
func outer(bin string, runs int) int {
	r := &peers.Runner{}
	defer r.Close()
	root := peers.Root(r)
	ns := peers.NewNetns(r)
	peers.StartChronyServerIn(r, ns, 123)
	self, err := os.Executable()
	if err != nil {
		r.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns.Name, self, "-inner", root, "-ntptool", bin, "-runs", fmt.Sprint(runs))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "timing run failed:", err)
		return 1
	}
	return 0
}

type client struct {
	name  string
	argv  []string
	env   []string
	times []time.Duration
}

func timeClients(root, bin string, runs int) int {
	py := "PYTHONPATH=" + filepath.Join(root, "usr/lib/python3/dist-packages")
	clients := []*client{
		{name: "ntptool query", argv: []string{bin, "query", "127.0.0.1"}},
		{name: "ntpdig (NTPsec)", argv: []string{"/usr/bin/python3", filepath.Join(root, "usr/bin/ntpdig"), "127.0.0.1"}, env: []string{py}},
		{name: "chronyd -Q (chrony)", argv: []string{filepath.Join(root, "usr/sbin/chronyd"), "-Q", "-u", "root",
			"server 127.0.0.1 iburst maxsamples 1"}},
		{name: "(wrapper alone)", argv: []string{"/bin/true"}},
	}
	for i := 0; i < runs; i++ {
		for _, c := range clients {
			argv := peers.NoCap(c.argv...)
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.Env = append(os.Environ(), c.env...)
			start := time.Now()
			out, err := cmd.CombinedOutput()
			elapsed := time.Since(start)
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s failed: %v\n%s", c.name, err, out)
				return 1
			}
			c.times = append(c.times, elapsed)
		}
	}
	// Every client pays the wrapper's fork+exec; the net time removes it.
	wrapper := median(clients[len(clients)-1].times)
	net := func(c *client) time.Duration { return median(c.times) - wrapper }
	ours := net(clients[0])
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "client\truns\tmin ms\tmedian ms\tmax ms\tnet median ms\tnet / ntptool's\t\n")
	for _, c := range clients[:len(clients)-1] {
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.1fx\t\n", c.name, len(c.times), ms(slices.Min(c.times)),
			ms(median(c.times)), ms(slices.Max(c.times)), ms(net(c)), float64(net(c))/float64(ours))
	}
	tw.Flush()
	fmt.Printf("wrapper alone (`%s /bin/true`): median %.2f ms, subtracted for the net times\n", strings.Join(peers.NoCap(), " "), ms(wrapper))
	met := ours <= 5*time.Millisecond && net(clients[1]) > ours && net(clients[2]) > ours
	fmt.Printf("goal (ntptool net median <= 5 ms and faster than both): %s (net median %.2f ms)\n",
		map[bool]string{true: "met", false: "NOT met"}[met], ms(ours))
	fmt.Println("(one chronyd -x server on 127.0.0.1:123 in a private namespace; runs interleaved round-robin)")
	return 0
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
