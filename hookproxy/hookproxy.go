// Package hookproxy runs the step hooks (package stephook: the built-in
// DHCP renewers and the exec hooks) in a privileged helper process, for a
// daemon started as root that switches to an unprivileged user ([run]
// user, package privdrop).
//
// Why a helper: the renewers need root, not a capability or two. They
// signal DHCP clients of any user (CAP_KILL), set address lifetimes over
// netlink (CAP_NET_ADMIN), and restart dhclient, whose script rewrites
// /etc/resolv.conf and runs ip(8) as root. Keeping those rights in the
// daemon itself would leave root-equivalent power in the process that
// parses packets from the network; dropping them would leave DHCP leases
// unprotected around steps. So the daemon starts the helper before it
// drops its privileges (the ntptool binary again, with a hidden command),
// hands it the [hooks] configuration once over a socketpair, and later
// sends it only events: a kind (pre-step, post-step, external-step), the
// step, the old and new times and a reason. The helper validates each
// event, runs the configured hooks (nothing else: a compromised daemon
// can make it run the configured hooks, at most, never a command of its
// choosing) and answers with the report. The helper gives up
// CAP_SYS_TIME first, so that no hook can change the clock, and exits
// when the daemon closes the socket (or dies).
//
// Protocol: JSON, one object per line, each at most MaxLineBytes. The
// daemon sends a Hello, then Requests; the helper answers each Request
// with a Response carrying the same sequence number.
package hookproxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/ntptool/ntptool/config"
	"github.com/ntptool/ntptool/stephook"
)

// Runner is what runs an event's hooks: a *stephook.Runner in the
// daemon's process, or a *Client of a helper.
type Runner interface {
	Run(ctx context.Context, ev stephook.Event) stephook.Report
	DryRun(ctx context.Context, ev stephook.Event) stephook.Report
}

// MaxLineBytes bounds a protocol line; longer ones end the connection.
// Hook output is cut to 64 KiB by stephook, so a report fits.
const MaxLineBytes = 1 << 20

// maxReasonBytes bounds an event's reason (it becomes NTPTOOL_REASON).
const maxReasonBytes = 512

// Hello is the first line the daemon sends: the configuration the helper
// runs with for its whole life.
type Hello struct {
	Hooks config.Hooks `json:"hooks"`
}

// Request asks the helper to run an event's hooks.
type Request struct {
	Seq    uint64 `json:"seq"`
	Kind   string `json:"kind"` // stephook.Kind.String()
	StepNS int64  `json:"step_ns"`
	// Old and New are RFC 3339 times, "" if unknown.
	Old    string `json:"old,omitempty"`
	New    string `json:"new,omitempty"`
	Reason string `json:"reason"`
	DryRun bool   `json:"dry_run,omitempty"`
}

// Response is the report of a Request's hooks.
type Response struct {
	Seq        uint64   `json:"seq"`
	Verdict    string   `json:"verdict"` // "proceed" or "abort"
	Reason     string   `json:"reason,omitempty"`
	DurationNS int64    `json:"duration_ns"`
	Results    []Result `json:"results"`
	// Error is set when the request was refused (invalid event).
	Error string `json:"error,omitempty"`
}

// Result is a stephook.Result on the wire (the address lifetimes stay in
// the helper's log).
type Result struct {
	Hook       string   `json:"hook"`
	Name       string   `json:"name"`
	Client     string   `json:"client,omitempty"`
	Interfaces []string `json:"interfaces,omitempty"`
	Action     string   `json:"action,omitempty"`
	Outcome    string   `json:"outcome"`
	Error      string   `json:"error,omitempty"`
	DurationNS int64    `json:"duration_ns"`
	Output     string   `json:"output,omitempty"`
}

var kinds = map[string]stephook.Kind{
	stephook.PreStep.String(): stephook.PreStep, stephook.PostStep.String(): stephook.PostStep,
	stephook.ExternalStep.String(): stephook.ExternalStep,
}

// ErrHelper wraps the failures of the helper process or of its socket.
var ErrHelper = errors.New("hook helper")

// Options configure Start. The zero value is usable.
type Options struct {
	// Stderr receives the helper's log (its standard output too).
	// Default os.Stderr.
	Stderr io.Writer
	// Env is the helper's environment, which its exec hooks inherit.
	// Default: this process's, without systemd's notification and
	// watchdog variables (a hook is not the service).
	Env []string
}

// Client talks to a helper process. Its methods may be called from
// several goroutines; events are run one at a time.
type Client struct {
	cmd       *exec.Cmd
	conn      net.Conn
	r         *bufio.Reader
	onFailure string // the pre-step policy, for a helper that is gone
	timeout   time.Duration

	mu     sync.Mutex
	seq    uint64
	broken error
	done   chan struct{} // closed when the helper exited
}

// Start starts the helper, argv (the ntptool binary and its hidden helper
// command), with one end of a socketpair as file descriptor 3, and sends
// it hooks. Call it before the process drops its privileges: the helper
// keeps the ones it has then (but CAP_SYS_TIME).
func Start(argv []string, hooks config.Hooks, opt Options) (*Client, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("%w: no command", ErrHelper)
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: socketpair: %v", ErrHelper, err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "hookproxy"), os.NewFile(uintptr(fds[1]), "hookproxy-helper")
	defer theirs.Close()
	conn, err := net.FileConn(ours)
	ours.Close() // FileConn dups it
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrHelper, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Stdout, cmd.Stderr = opt.Stderr, opt.Stderr
	if opt.Stderr == nil {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	cmd.Env = opt.Env
	if cmd.Env == nil {
		cmd.Env = HelperEnv(os.Environ())
	}
	if err := cmd.Start(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: start %s: %v", ErrHelper, argv[0], err)
	}
	c := &Client{cmd: cmd, conn: conn, r: bufio.NewReaderSize(conn, 64<<10), onFailure: hooks.OnFailure,
		timeout: hooks.Timeout.Duration, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.done) }()
	if err := writeLine(conn, Hello{Hooks: hooks}); err != nil {
		c.Close()
		return nil, fmt.Errorf("%w: %v", ErrHelper, err)
	}
	return c, nil
}

// HelperEnv is env without the variables of systemd's notification,
// watchdog and socket activation protocols.
func HelperEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// Pid is the helper's process id.
func (c *Client) Pid() int { return c.cmd.Process.Pid }

// Run runs ev's hooks in the helper and returns its report; if the helper
// cannot answer, a report with one failed result, and for a pre-step the
// verdict the failure policy gives a failed hook (abort, unless
// hooks.on_failure is "proceed").
func (c *Client) Run(ctx context.Context, ev stephook.Event) stephook.Report {
	return c.run(ctx, ev, false)
}

// DryRun is Run with every hook only described (stephook.Runner.DryRun).
func (c *Client) DryRun(ctx context.Context, ev stephook.Event) stephook.Report {
	return c.run(ctx, ev, true)
}

func (c *Client) run(ctx context.Context, ev stephook.Event, dry bool) stephook.Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	resp, err := c.call(ctx, ev, dry)
	if err != nil {
		return c.failed(ev, err)
	}
	return toReport(ev, resp)
}

func (c *Client) call(ctx context.Context, ev stephook.Event, dry bool) (Response, error) {
	if c.broken != nil {
		return Response{}, c.broken
	}
	c.seq++
	req := Request{Seq: c.seq, Kind: ev.Kind.String(), StepNS: int64(ev.Step), Old: rfc3339(ev.Old), New: rfc3339(ev.New), Reason: ev.Reason, DryRun: dry}
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	fail := func(err error) (Response, error) {
		c.broken = fmt.Errorf("%w: %v", ErrHelper, err)
		c.conn.Close()
		return Response{}, c.broken
	}
	if err := writeLine(c.conn, req); err != nil {
		return fail(err)
	}
	line, err := readLine(c.r)
	if err != nil {
		return fail(err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return fail(fmt.Errorf("bad response: %v", err))
	}
	if resp.Seq != req.Seq {
		return fail(fmt.Errorf("response %d to request %d", resp.Seq, req.Seq))
	}
	if resp.Error != "" {
		return Response{}, fmt.Errorf("%w refused the event: %s", ErrHelper, resp.Error)
	}
	return resp, nil
}

// failed is the report when the helper could not run the hooks.
func (c *Client) failed(ev stephook.Event, err error) stephook.Report {
	rep := stephook.Report{Event: ev, Results: []stephook.Result{{Hook: "helper", Name: "hook-helper", Outcome: stephook.Failed, Err: err}}}
	if ev.Kind == stephook.PreStep && c.onFailure != "proceed" && c.onFailure != "step" {
		rep.Verdict, rep.Reason = stephook.Abort, err.Error()
	}
	return rep
}

// Close closes the socket, which ends the helper once its event in
// progress (if any) is done, and waits for it: at most the hooks' timeout
// and a few seconds, then it is killed.
func (c *Client) Close() error {
	c.conn.Close()
	t := time.NewTimer(c.timeout + 5*time.Second)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.cmd.Process.Kill()
		<-c.done
	}
	if st := c.cmd.ProcessState; st != nil && !st.Success() {
		return fmt.Errorf("%w: %v", ErrHelper, st)
	}
	return nil
}

// toReport turns a response back into a stephook.Report.
func toReport(ev stephook.Event, resp Response) stephook.Report {
	rep := stephook.Report{Event: ev, Reason: resp.Reason, Duration: time.Duration(resp.DurationNS)}
	if resp.Verdict == stephook.Abort.String() {
		rep.Verdict = stephook.Abort
	}
	for _, r := range resp.Results {
		res := stephook.Result{Hook: r.Hook, Name: r.Name, Client: stephook.ClientKind(r.Client), Interfaces: r.Interfaces,
			Action: r.Action, Outcome: stephook.Outcome(r.Outcome), Duration: time.Duration(r.DurationNS), Output: r.Output}
		if r.Error != "" {
			res.Err = errors.New(r.Error)
		}
		rep.Results = append(rep.Results, res)
	}
	return rep
}

// fromReport is a report on the wire.
func fromReport(seq uint64, rep stephook.Report) Response {
	resp := Response{Seq: seq, Verdict: rep.Verdict.String(), Reason: rep.Reason, DurationNS: int64(rep.Duration), Results: []Result{}}
	for _, r := range rep.Results {
		w := Result{Hook: r.Hook, Name: r.Name, Client: string(r.Client), Interfaces: r.Interfaces, Action: r.Action,
			Outcome: string(r.Outcome), DurationNS: int64(r.Duration), Output: r.Output}
		if r.Err != nil {
			w.Error = r.Err.Error()
		}
		resp.Results = append(resp.Results, w)
	}
	return resp
}

// ServeOptions configure Serve.
type ServeOptions struct {
	// Logger receives the hooks' log; nil discards it.
	Logger *slog.Logger
	// newRunner builds the runner (tests fake it); nil: stephook.New.
	newRunner func(config.Hooks, *slog.Logger) (Runner, error)
}

// Serve is the helper's side: it reads the Hello from conn, then runs the
// hooks of each valid Request and answers, until conn is closed (nil) or
// fails.
func Serve(conn io.ReadWriter, opt ServeOptions) error {
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	line, err := readLine(r)
	if err != nil {
		return fmt.Errorf("%w: no configuration: %v", ErrHelper, err)
	}
	var hello Hello
	if err := json.Unmarshal(line, &hello); err != nil {
		return fmt.Errorf("%w: bad configuration: %v", ErrHelper, err)
	}
	newRunner := opt.newRunner
	if newRunner == nil {
		newRunner = func(h config.Hooks, log *slog.Logger) (Runner, error) {
			return stephook.New(h, stephook.Options{Logger: log})
		}
	}
	runner, err := newRunner(hello.Hooks, log)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrHelper, err)
	}
	// Hooks are bounded by their timeout; a stuck helper is the daemon's
	// to notice, not ours to cut short.
	ctx := context.Background()
	for {
		line, err := readLine(r)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrHelper, err)
		}
		var req Request
		var resp Response
		if err := json.Unmarshal(line, &req); err != nil {
			return fmt.Errorf("%w: bad request: %v", ErrHelper, err)
		}
		ev, err := ParseEvent(req)
		switch {
		case err != nil:
			log.Warn("hook helper: event refused", "err", err)
			resp = Response{Seq: req.Seq, Error: err.Error()}
		case req.DryRun:
			resp = fromReport(req.Seq, runner.DryRun(ctx, ev))
		default:
			resp = fromReport(req.Seq, runner.Run(ctx, ev))
		}
		if err := writeLine(conn, resp); err != nil {
			return fmt.Errorf("%w: %v", ErrHelper, err)
		}
	}
}

// ParseEvent checks a request and returns its event: a known kind, times
// in RFC 3339 (or none), a reason of at most 512 bytes of UTF-8 without
// control characters.
func ParseEvent(req Request) (stephook.Event, error) {
	kind, ok := kinds[req.Kind]
	if !ok {
		return stephook.Event{}, fmt.Errorf("unknown event kind %q", req.Kind)
	}
	ev := stephook.Event{Kind: kind, Step: time.Duration(req.StepNS), Reason: req.Reason}
	for _, t := range []struct {
		s   string
		dst *time.Time
	}{{req.Old, &ev.Old}, {req.New, &ev.New}} {
		if t.s == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339Nano, t.s)
		if err != nil {
			return stephook.Event{}, fmt.Errorf("bad time %q", t.s)
		}
		*t.dst = v
	}
	if len(ev.Reason) > maxReasonBytes || !utf8.ValidString(ev.Reason) || strings.ContainsFunc(ev.Reason, isControl) {
		return stephook.Event{}, fmt.Errorf("reason: want at most %d bytes of printable UTF-8", maxReasonBytes)
	}
	return ev, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func writeLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) >= MaxLineBytes {
		return fmt.Errorf("message of %d bytes", len(b))
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// readLine reads one line of at most MaxLineBytes, without its "\n".
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxLineBytes {
			return nil, fmt.Errorf("line longer than %d bytes", MaxLineBytes)
		}
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}
