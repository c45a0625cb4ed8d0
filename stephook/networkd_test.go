package stephook_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const networkdBin = "/lib/systemd/systemd-networkd"

// networkdInner runs inside the client's namespace and a private mount
// namespace: a tmpfs /run (the host's /run/systemd and /run/dbus are not
// seen or touched), /sys read-only (networkd then does not wait for udev),
// a private dbus-daemon as the system bus, and systemd-networkd as the
// DHCP client of the one interface. It says what it does on stdout and
// waits for a line on stdin before each event and before it ends.
const networkdInner = `set -eu
mount -t tmpfs tmpfs /run
mkdir -p /run/dbus /run/systemd/network /run/systemd/netif
cp "$DIR/50-lab.network" /run/systemd/network/
chown -R systemd-network:systemd-network /run/systemd/netif
mount -o remount,bind,ro /sys 2>/dev/null || mount -o remount,ro /sys
dbus-daemon --config-file="$DIR/bus.conf" --nofork --nopidfile </dev/null >"$DIR/dbus.log" 2>&1 &
DB=$!
i=0; until [ -S /run/dbus/system_bus_socket ]; do i=$((i+1)); [ $i -lt 200 ] || exit 3; sleep 0.05; done
SYSTEMD_LOG_LEVEL=info ` + networkdBin + ` </dev/null >"$DIR/networkd.log" 2>&1 &
ND=$!
trap 'kill $ND $DB 2>/dev/null' EXIT
i=0; until ip -o -4 addr show dev "$IF" | grep -q inet; do i=$((i+1)); [ $i -lt 600 ] || exit 4; sleep 0.05; done
echo BOUND
for ev in pre-step post-step; do
  read -r go
  echo "EVENT $ev $(env STEPHOOK_TEST_HELPER=$ev "$SELF" 2>>"$DIR/helper.log")"
done
read -r go
echo DONE
`

// TestNetworkdNetns: with systemd-networkd as the client, the pre-step and
// post-step hooks renew over D-Bus (RenewLink) without a moment without
// the address.
func TestNetworkdNetns(t *testing.T) {
	t.Parallel()
	requireTools(t, "dbus-daemon", "unshare", "timeout")
	if _, err := os.Stat(networkdBin); err != nil {
		requireTools(t, "systemd-networkd") // fails (CI) or skips with the name
	}
	l := newLab(t)
	files := map[string]string{
		"50-lab.network": "[Match]\nName=" + l.cif + "\n[Network]\nDHCP=ipv4\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n" +
			"[DHCPv4]\nUseDNS=no\nUseNTP=no\nUseHostname=no\nUseDomains=no\nClientIdentifier=mac\n",
		"bus.conf": `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path=/run/dbus/system_bus_socket</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_type="method_call"/>
<allow send_destination="*"/><allow receive_sender="*"/></policy></busconfig>
`,
		"inner.sh": networkdInner,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(l.dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := l.nsCommand([]string{"DIR=" + l.dir, "IF=" + l.cif, "SELF=" + self},
		"timeout", "120", "unshare", "-m", "--propagation", "private", "sh", filepath.Join(l.dir, "inner.sh"))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// A file, not a pipe: nothing waits for the children to close it.
	errFile, err := os.Create(filepath.Join(l.dir, "inner.err"))
	if err != nil {
		t.Fatal(err)
	}
	defer errFile.Close()
	cmd.Stderr = errFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.killAll() // networkd and dbus-daemon too, by PID
		_ = cmd.Wait()
		if t.Failed() {
			for _, f := range []string{"networkd.log", "helper.log", "dbus.log", "inner.err"} {
				b, _ := os.ReadFile(filepath.Join(l.dir, f))
				t.Logf("%s:\n%s", f, b)
			}
		}
	})
	lines := bufio.NewScanner(stdout)
	next := func(prefix string) string {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("inner script ended before %q: %v", prefix, lines.Err())
		}
		line := lines.Text()
		if !strings.HasPrefix(line, prefix) {
			t.Fatalf("inner script said %q, want %q", line, prefix)
		}
		return strings.TrimPrefix(line, prefix)
	}
	next("BOUND")
	s := l.sampler()
	for _, event := range []string{"pre-step", "post-step"} {
		l.waitFor("valid_lft dropping", 10*time.Second, func() bool { v, ok := s.valid(); return ok && v <= leaseSeconds-3 })
		reqs, acks := l.count("DHCPREQUEST("), l.count("DHCPACK(")
		stop := s.watch()
		fmt.Fprintln(stdin, "go")
		out := next("EVENT " + event + " ")
		samples, missing := stop()
		var rep helperReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%s: %v: %q", event, err, out)
		}
		after, _ := s.valid()
		t.Logf("%s: %d samples, %d without the address, valid_lft %d s after; %+v", event, samples, missing, after, rep)
		if missing != 0 || len(rep.Results) != 1 || rep.Results[0].Client != "networkd" || rep.Results[0].Outcome != "ok" {
			t.Errorf("%s: report %+v, %d of %d samples without the address", event, rep, missing, samples)
		}
		if after < leaseSeconds-5 || l.count("DHCPREQUEST(") <= reqs || l.count("DHCPACK(") <= acks {
			t.Errorf("%s: valid_lft %d s, no new DHCPREQUEST/ACK at dnsmasq", event, after)
		}
	}
	fmt.Fprintln(stdin, "go")
	next("DONE")
}
