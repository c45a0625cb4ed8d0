package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ntptool/ntptool/e2e/report"
)

// binaries are the static Go programs built for the guest (and the host
// server).
type binaries struct {
	ntptool, init string
}

// goTool is the go command: on $PATH, else where the project's set-up
// puts it.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// buildBinaries builds a static ntptool and the static guest init.
func (e *env) buildBinaries() (binaries, error) {
	b := binaries{ntptool: e.path("bin", "ntptool"), init: e.path("bin", "init")}
	for _, x := range []struct{ out, pkg string }{{b.ntptool, "./cmd/ntptool"}, {b.init, "./e2e/guest"}} {
		cmd := exec.Command(goTool(), "build", "-trimpath", "-ldflags=-s -w", "-o", x.out, x.pkg)
		cmd.Dir = e.repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build %s: %v\n%s", x.pkg, err, out)
		}
	}
	return b, nil
}

// hostBinary finds a program of an installed package.
func hostBinary(candidates ...string) (string, error) {
	for _, c := range candidates {
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return c, nil
		}
	}
	return "", fmt.Errorf("none of %s found (is its package installed?)", strings.Join(candidates, ", "))
}

// baseArchive is what every boot has: the init, ntptool (and the symlink
// ntptoold the daemon runs as), busybox, dash, iproute2's ip, setpriv, the
// NIC and veth modules.
func (e *env) baseArchive(k *kernel, b binaries) (string, error) {
	st, err := newStage(e.path("stage", "base"))
	if err != nil {
		return "", err
	}
	if err := st.copyFile(b.init, "init", 0o755); err != nil {
		return "", err
	}
	if err := st.copyFile(b.ntptool, "bin/ntptool", 0o755); err != nil {
		return "", err
	}
	if err := st.symlink("ntptool", "bin/ntptoold"); err != nil {
		return "", err
	}
	for _, x := range []struct {
		dst        string
		candidates []string
	}{
		{"bin/busybox", []string{"/usr/bin/busybox", "/bin/busybox"}},
		{"bin/dash", []string{"/usr/bin/dash", "/bin/dash"}},
		{"sbin/ip", []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}},
		{"usr/bin/setpriv", []string{"/usr/bin/setpriv", "/bin/setpriv"}},
	} {
		src, err := hostBinary(x.candidates...)
		if err != nil {
			return "", err
		}
		if err := st.binary(src, x.dst, ""); err != nil {
			return "", err
		}
	}
	// dhclient-script calls ip through its PATH, which starts at /usr/bin.
	if err := st.symlink("/sbin/ip", "usr/bin/ip"); err != nil {
		return "", err
	}
	idx, err := moduleIndex(filepath.Join(k.Root, "lib", "modules"))
	if err != nil {
		return "", err
	}
	order, err := moduleOrder(kernelModules, idx, moduleDepends)
	if err != nil {
		return "", err
	}
	for _, m := range order {
		if err := st.copyFile(idx[m], "lib/modules/"+m+".ko", 0o644); err != nil {
			return "", err
		}
	}
	files := map[string]string{
		"e2e/modules.order": strings.Join(order, " ") + "\n",
		"etc/passwd":        "root:x:0:0:root:/root:/bin/sh\nntptool:x:101:101:ntptool:/nonexistent:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"etc/group":         "root:x:0:\nntptool:x:101:\nnogroup:x:65534:\n",
		"etc/hosts":         "127.0.0.1 localhost\n",
	}
	for p, c := range files {
		if err := st.writeFile(p, c, 0o644); err != nil {
			return "", err
		}
	}
	for _, d := range []string{"proc", "sys", "dev", "tmp", "run", "var/lib", "root"} {
		if err := os.MkdirAll(filepath.Join(st.dir, d), 0o755); err != nil {
			return "", err
		}
	}
	out := e.path("initrd", "base.cpio.gz")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	return out, st.archive(out)
}

// udhcpcScript sets the lease's lifetimes on the address (Debian's default
// script sets none, so the address would never expire) with iproute2's ip.
const udhcpcScript = `#!/bin/sh
# udhcpc event script of the e2e guest.
case "$1" in
deconfig) /sbin/ip -4 addr flush dev "$interface" ;;
bound|renew)
	/sbin/ip -4 addr replace "$ip/${mask:-24}" dev "$interface" valid_lft "${lease:-forever}" preferred_lft "${lease:-forever}"
	echo "udhcpc-script: $1 ip=$ip lease=$lease" ;;
esac
exit 0
`

// bundleArchive builds the archive of one bundle of third-party programs,
// each with its shared libraries.
func (e *env) bundleArchive(name string) (string, error) {
	st, err := newStage(e.path("stage", name))
	if err != nil {
		return "", err
	}
	switch name {
	case bundleChrony:
		root := e.path("chrony")
		if err := e.download("chrony", root); err != nil {
			return "", err
		}
		if err := st.binary(filepath.Join(root, "usr/sbin/chronyd"), "usr/sbin/chronyd", ""); err != nil {
			return "", err
		}
	case bundleDHCP:
		for _, x := range []struct {
			dst        string
			candidates []string
		}{
			{"usr/sbin/dnsmasq", []string{"/usr/sbin/dnsmasq"}},
			{"usr/sbin/dhclient", []string{"/usr/sbin/dhclient", "/sbin/dhclient"}},
			{"sbin/dhclient-script", []string{"/usr/sbin/dhclient-script", "/sbin/dhclient-script"}},
			{"usr/sbin/dhcpcd", []string{"/usr/sbin/dhcpcd", "/sbin/dhcpcd"}},
			{"usr/lib/dhcpcd/dhcpcd-run-hooks", []string{"/usr/lib/dhcpcd/dhcpcd-run-hooks", "/lib/dhcpcd/dhcpcd-run-hooks"}},
		} {
			src, err := hostBinary(x.candidates...)
			if err != nil {
				return "", err
			}
			if err := st.binary(src, x.dst, ""); err != nil {
				return "", err
			}
		}
		if err := st.writeFile("e2e/udhcpc.script", udhcpcScript, 0o755); err != nil {
			return "", err
		}
	default:
		return "", fmt.Errorf("unknown bundle %q", name)
	}
	out := e.path("initrd", name+".cpio.gz")
	return out, st.archive(out)
}

// scenarioInitrd is the base archive, the scenario's bundles and its Spec.
func (e *env) scenarioInitrd(base string, bundles map[string]string, s scenario, sp report.Spec) (string, error) {
	st, err := newStage(e.path("stage", "spec-"+s.Name))
	if err != nil {
		return "", err
	}
	js, err := json.MarshalIndent(sp, "", "  ")
	if err != nil {
		return "", err
	}
	if err := st.writeFile(strings.TrimPrefix(report.SpecPath, "/"), string(js)+"\n", 0o644); err != nil {
		return "", err
	}
	specArc := e.path("initrd", "spec-"+s.Name+".cpio.gz")
	if err := st.archive(specArc); err != nil {
		return "", err
	}
	parts := []string{base}
	for _, b := range s.Bundles {
		p, ok := bundles[b]
		if !ok {
			return "", fmt.Errorf("bundle %s not built", b)
		}
		parts = append(parts, p)
	}
	parts = append(parts, specArc)
	out := e.path("initrd", s.Name+".img")
	return out, concat(out, parts...)
}

// hostServer is `ntptool serve` on the host's loopback, the guest's
// reference clock. It only reads the host's clock.
type hostServer struct {
	cmd  *exec.Cmd
	port int
	done chan struct{}
}

// freeUDPPort asks the kernel for a free port on 127.0.0.1.
func freeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

func startHostServer(ctx context.Context, ntptool, logPath string) (*hostServer, error) {
	port, err := freeUDPPort()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	// Stratum 1 from the local clock whatever the kernel's sync state; no
	// rate limit (every guest packet comes from 127.0.0.1 through QEMU's
	// NAT); a transmit timestamp taken just before each send.
	cmd := exec.Command(ntptool, "serve", "--listen", "127.0.0.1:"+strconv.Itoa(port), "--local-stratum", "1",
		"--no-rate-limit", "--workers", "1", "--tx-chunk", "1", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start ntptool serve: %w", err)
	}
	s := &hostServer{cmd: cmd, port: port, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	// Ready when it answers.
	deadline := time.Now().Add(10 * time.Second)
	for {
		q := exec.CommandContext(ctx, ntptool, "query", "--timeout", "200ms", "127.0.0.1:"+strconv.Itoa(port))
		if q.Run() == nil {
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("ntptool serve exited; see %s", logPath)
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("ntptool serve on 127.0.0.1:%d did not answer within 10 s", port)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends the server by its PID.
func (s *hostServer) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}
