package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ntptool/ntptool/e2e/guard"
	"github.com/ntptool/ntptool/e2e/report"
)

// boot is one run of the guest VM.
type boot struct {
	Kernel  string
	Initrd  string
	Append  string        // extra kernel command-line words
	Budget  time.Duration // the whole run, boot to power-off
	Console string        // file the serial console is written to
	Verbose io.Writer     // if set, console lines are copied here
}

// bootResult is what a boot left.
type bootResult struct {
	Wall     time.Duration
	Log      []byte
	ExitErr  error
	TimedOut bool
}

// qemuArgs is the QEMU command line: TCG (KVM does not work on these
// machines), no firmware ROMs or default devices, the serial console on
// stdio, one virtio NIC on QEMU's user-mode network. The guest configures
// only 10.0.2.15/24 with no default route, so the one address it can reach
// is 10.0.2.2, the host's loopback.
func qemuArgs(b boot) []string {
	return []string{
		"qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-machine", "q35", "-m", "512", "-smp", "1",
		"-nographic", "-nodefaults", "-serial", "stdio", "-no-reboot",
		"-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,romfile=",
		"-kernel", b.Kernel, "-initrd", b.Initrd,
		"-append", "console=ttyS0 quiet loglevel=3 panic=-1 " + guard.Marker + " " + b.Append,
	}
}

// run boots the guest under timeout(1) and, as a second bound, kills the
// process group (timeout and QEMU, by the PGID of the child it started)
// after Budget + 15 s. QEMU pauses instead of exiting on some emulation
// errors: the bounds are what make every boot end.
func (b boot) run(ctx context.Context) (bootResult, error) {
	secs := strconv.Itoa(int(b.Budget.Seconds()) + 1)
	argv := append([]string{"timeout", "--kill-after=5", secs}, qemuArgs(b)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdin = nil // /dev/null: no terminal in CI
	pr, pw, err := os.Pipe()
	if err != nil {
		return bootResult{}, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	logf, err := os.Create(b.Console)
	if err != nil {
		pr.Close()
		pw.Close()
		return bootResult{}, err
	}
	defer logf.Close()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return bootResult{}, fmt.Errorf("start qemu: %w", err)
	}
	pw.Close()
	pgid := cmd.Process.Pid
	var log strings.Builder
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			log.WriteString(line + "\n")
			fmt.Fprintf(logf, "{host %7.2f} %s\n", time.Since(start).Seconds(), line)
			if b.Verbose != nil && !isFrameLine(line) {
				fmt.Fprintf(b.Verbose, "  | %s\n", line)
			}
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var res bootResult
	hard := time.NewTimer(b.Budget + 15*time.Second)
	defer hard.Stop()
	select {
	case err := <-done:
		res.ExitErr = err
	case <-hard.C:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		res.ExitErr = <-done
		res.TimedOut = true
	case <-ctx.Done():
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		res.ExitErr = <-done
		res.TimedOut = true
	}
	// Whatever is left of the group (nothing, normally).
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-copied
	pr.Close()
	res.Wall = time.Since(start)
	res.Log = []byte(log.String())
	var ee *exec.ExitError
	if res.ExitErr != nil && asExit(res.ExitErr, &ee) && ee.ExitCode() == 124 {
		res.TimedOut = true
	}
	return res, nil
}

func asExit(err error, ee **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*ee = e
	}
	return ok
}

// isFrameLine: the report frame's lines are not worth echoing.
func isFrameLine(s string) bool {
	s = strings.TrimRight(s, "\r")
	if strings.HasPrefix(s, "@@NTPTOOL-E2E-REPORT") {
		return true
	}
	if s == "" || len(s) > report.LineLen {
		return false
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	return true
}
