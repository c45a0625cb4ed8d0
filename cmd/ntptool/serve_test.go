package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beevik/ntp"
	"github.com/google/go-cmp/cmp"
	"github.com/ntptool/ntptool/internal/peers"
)

// runServeArgs runs the command line in-process.
func runServeArgs(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestServeUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"stratum too high", []string{"serve", "--listen", "127.0.0.1:0", "--local-stratum", "16"}, exitUsage, "--local-stratum 16"},
		{"negative stratum", []string{"serve", "--listen", "127.0.0.1:0", "--local-stratum", "-1"}, exitUsage, "--local-stratum -1"},
		{"bad listen", []string{"serve", "--listen", "127.0.0.1"}, exitUsage, `--listen "127.0.0.1"`},
		{"bad port", []string{"serve", "--listen", "127.0.0.1:ntpx"}, exitUsage, "numeric port"},
		{"bad CIDR", []string{"serve", "--listen", "127.0.0.1:0", "--allow", "10.0.0.0/40"}, exitUsage, "allow"},
		{"positional argument", []string{"serve", "extra"}, exitUsage, "need exactly 0"},
		{"unknown flag", []string{"serve", "--port", "123"}, exitUsage, "unknown flag"},
		{"bad log level", []string{"serve", "--listen", "127.0.0.1:0", "--log-level", "loud"}, exitUsage, "--log-level"},
		{"missing config file", []string{"serve", "--config", "/nonexistent/ntptool.toml"}, exitFailure, "nonexistent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runServeArgs(tc.args...)
			if code != tc.wantCode || !strings.Contains(stderr, tc.wantErr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, tc.wantCode, tc.wantErr)
			}
		})
	}
}

func TestServeHelp(t *testing.T) {
	code, stdout, _ := runServeArgs("serve", "--help")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"--listen", "--local-stratum", "--config", "CAP_NET_BIND_SERVICE",
		"ntptool serve --listen 127.0.0.1:11123 --local-stratum 2", "KoD RATE", "SIGUSR1"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

// serveProcess runs the built ntptool serve (inside ns when not nil) and
// returns once it answers NTP. Stop sends SIGTERM and returns the exit error
// and the stderr log.
type serveProcess struct {
	cmd     *exec.Cmd
	stderr  *bytes.Buffer
	done    chan struct{} // closed when the process has exited
	waitErr error
}

func startServe(t *testing.T, ns *peers.Netns, addr string, args ...string) *serveProcess {
	t.Helper()
	bin := peers.BuildNtptool(t)
	p := &serveProcess{stderr: &bytes.Buffer{}, done: make(chan struct{})}
	p.cmd = ns.Command(context.Background(), bin, append([]string{"serve"}, args...)...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill() // by PID
			<-p.done
		}
		if t.Failed() {
			t.Logf("ntptool serve log:\n%s", p.stderr)
		}
	})
	peers.WaitNTP(t, ns, addr)
	return p
}

func (p *serveProcess) stop(t *testing.T) (string, error) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		return p.stderr.String(), p.waitErr
	case <-time.After(10 * time.Second):
		t.Fatal("ntptool serve did not exit on SIGTERM")
		return "", nil
	}
}

// TestServeInterop is the acceptance test of `ntptool serve`: the built
// binary on loopback is queried by chronyd -Q and beevik/ntp, and inside a
// network namespace on port 123 by ntpdig; each must see the configured
// stratum and |offset| < 5 ms. SIGTERM stops it with exit 0 and final stats.
func TestServeInterop(t *testing.T) {
	root := peers.Root(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	port := peers.FreeUDPPort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	lo := startServe(t, nil, addr, "--listen", addr, "--local-stratum", "2")
	ns := peers.NewNetns(t)
	inNS := startServe(t, ns, "127.0.0.1:123", "--listen", "127.0.0.1:123", "--listen", "[::1]:123", "--local-stratum", "3")

	tests := []struct {
		name        string
		wantStratum int
		query       func() (peers.Result, error)
	}{
		{"chronyd -Q", 2, func() (peers.Result, error) { return peers.ChronydQuery(ctx, root, "127.0.0.1", port) }},
		{"beevik/ntp", 2, func() (peers.Result, error) { return peers.Beevik(addr, nil) }},
		{"ntpdig (netns, port 123)", 3, func() (peers.Result, error) { return peers.Ntpdig(ctx, root, ns, "127.0.0.1") }},
		{"ntpdig (netns, [::1]:123)", 3, func() (peers.Result, error) { return peers.Ntpdig(ctx, root, ns, "::1") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.query()
			got.Check(t, err, tc.wantStratum)
		})
	}

	for _, p := range []*serveProcess{lo, inNS} {
		log, err := p.stop(t)
		if err != nil {
			t.Errorf("exit: %v\n%s", err, log)
		}
		for _, want := range []string{`msg="serving NTP"`, `msg="final statistics"`} {
			if !strings.Contains(log, want) {
				t.Errorf("log lacks %s:\n%s", want, log)
			}
		}
	}
}

// TestServeConfigFile: the [server] section of --config is used, and flags
// override it.
func TestServeConfigFile(t *testing.T) {
	port := peers.FreeUDPPort(t)
	conf := filepath.Join(t.TempDir(), "ntptool.toml")
	text := fmt.Sprintf("[server]\nlisten = [\"127.0.0.1:%d\"]\nlocal_stratum = 4\ndeny = [\"127.0.0.9\"]\n\n[server.ratelimit]\nburst = 4\n", port)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	startServe(t, nil, addr, "--config", conf)
	r, err := ntp.QueryWithOptions(addr, ntp.QueryOptions{Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Stratum != 4 {
		t.Errorf("stratum %d from the config file, want 4", r.Stratum)
	}

	port2 := peers.FreeUDPPort(t)
	addr2 := fmt.Sprintf("127.0.0.1:%d", port2)
	startServe(t, nil, addr2, "--config", conf, "--listen", addr2, "--local-stratum", "5")
	r, err = ntp.QueryWithOptions(addr2, ntp.QueryOptions{Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(uint8(5), r.Stratum); diff != "" {
		t.Errorf("--local-stratum over the file (-want +got):\n%s", diff)
	}
	// The denied address from the file gets nothing (the answer to the
	// allowed client above proves the server is up).
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 9)}, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port2})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := make([]byte, 48)
	req[0] = 0x23
	c.Write(req)
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(req); err == nil {
		t.Errorf("denied client got a %d-byte reply", n)
	}
}
