package stephook

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// exec runs one exec hook: argv without a shell, with the daemon's
// environment plus the NTPTOOL_* variables of ev, its output (stdout and
// stderr, at most 64 KiB) captured for the log, killed with its whole
// process group when hooks.timeout ends.
func (r *Runner) exec(ctx context.Context, ev Event, argv []string, dry bool) Result {
	res := Result{Hook: "exec", Name: argv[0], Action: strings.Join(argv, " ")}
	if dry {
		res.Outcome = DryRun
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	start := r.sys.now()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), ev.Env()...)
	cmd.Dir = "/"
	var out limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, so that a timeout kills what it started too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	// A grandchild that keeps the output open does not hold the step.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	res.Duration = r.sys.now().Sub(start)
	res.Output = strings.TrimRight(out.b.String(), "\n")
	if out.truncated {
		res.Output += "\n[output truncated at 64 KiB]"
	}
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		res.Outcome, res.Err = TimedOut, fmt.Errorf("killed after hooks.timeout %v", r.timeout)
	case err != nil:
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.Exited() {
			err = fmt.Errorf("exit status %d", ee.ExitCode())
		}
		res.Outcome, res.Err = Failed, err
	default:
		res.Outcome = OK
	}
	return res
}
