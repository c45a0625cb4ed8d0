package daemon_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ntptool/ntptool/audit"
	"github.com/ntptool/ntptool/control"
	"github.com/ntptool/ntptool/daemon"
	"github.com/ntptool/ntptool/internal/opstest"
)

// auditLog is a slog handler that passes the daemon's "audit" records
// (one per journal entry) to the test, so that it waits on them instead
// of on time.
type auditLog struct {
	mu    sync.Mutex
	kinds chan string
	all   []string
}

func (a *auditLog) Enabled(context.Context, slog.Level) bool { return true }
func (a *auditLog) Handle(_ context.Context, r slog.Record) error {
	a.mu.Lock()
	a.all = append(a.all, recordText(r))
	a.mu.Unlock()
	if r.Message != "audit" {
		return nil
	}
	r.Attrs(func(at slog.Attr) bool {
		if at.Key == "kind" {
			select {
			case a.kinds <- at.Value.String():
			default:
			}
		}
		return true
	})
	return nil
}
func (a *auditLog) WithAttrs([]slog.Attr) slog.Handler { return a }
func (a *auditLog) WithGroup(string) slog.Handler      { return a }

// The daemon without clock control against a server 3 s ahead: it
// journals the step it would make, marked not applied, with its pre- and
// post-step hooks (described, not run: a dry run disturbs nothing), then
// the state change and slews, in order, and the chain verifies.
func TestRunJournalsAStepAndSlews(t *testing.T) {
	srv := opstest.NewServer(t, 3*time.Second, true)
	dir := t.TempDir()
	marker := filepath.Join(dir, "hook-ran")
	cfg := opstest.Config(t, dir, srv, `[hooks.renewers]
dhclient = false
[step]
threshold = "1s"
`)
	// The hooks would leave a file if they ran.
	data, _ := os.ReadFile(cfg)
	data = []byte(strings.Replace(string(data), `dhcp_renew = "off"`, `dhcp_renew = "off"
pre_step = [["/usr/bin/touch", "`+marker+`"]]
post_step = [["/usr/bin/touch", "`+marker+`"]]`, 1))
	if err := os.WriteFile(cfg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	log := &auditLog{kinds: make(chan string, 64)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.RunOptions{ConfigPath: cfg, NoClockControl: true, Logger: slog.New(log)})
	}()
	deadline := time.After(30 * time.Second)
	var kinds []string
	for slews := 0; slews < 3; {
		select {
		case k := <-log.kinds:
			kinds = append(kinds, k)
			if k == "slew" {
				slews++
			}
		case err := <-done:
			t.Fatalf("Run returned %v; log:\n%s", err, strings.Join(log.all, "\n"))
		case <-deadline:
			t.Fatalf("entries so far %v; log:\n%s", kinds, strings.Join(log.all, "\n"))
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	journal := filepath.Join(dir, "log", "audit.jsonl")
	head, err := audit.ReadHead(journal + ".head")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.VerifyFiles([]string{journal}, audit.VerifyOptions{Head: &head})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	var entries []audit.Entry
	if err := audit.Scan([]string{journal}, func(r audit.Record) error {
		if r.Parsed.Entry != nil {
			entries = append(entries, *r.Parsed.Entry)
		}
		return r.Err
	}); err != nil {
		t.Fatal(err)
	}
	var step *audit.Entry
	var order []string
	for i, e := range entries {
		order = append(order, string(e.Kind))
		if e.Applied {
			t.Errorf("entry %d (%s) applied without clock control", e.Seq, e.Kind)
		}
		if e.Kind == audit.KindStep && step == nil {
			step = &entries[i]
		}
	}
	if step == nil {
		t.Fatalf("no step in %v", order)
	}
	if step.DeltaSeconds < 2.99 || step.DeltaSeconds > 3.01 || len(step.Sources) != 1 || !strings.Contains(step.Reason, "beyond step.threshold 1s") {
		t.Errorf("step entry %+v, want +3 s from the source, with the reason", step)
	}
	var phases []string
	for _, h := range step.Hooks {
		phases = append(phases, h.Phase+" "+h.Name+" "+h.Result)
	}
	if want := "pre_step /usr/bin/touch dry-run,post_step /usr/bin/touch dry-run"; strings.Join(phases, ",") != want {
		t.Errorf("step hooks %v, want %s", phases, want)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("a hook ran without clock control")
	}
	// In order: nothing synchronised before the step.
	first := strings.Join(order, " ")
	if i, j := strings.Index(first, "step"), strings.Index(first, "status"); j < i {
		t.Errorf("entries %v: the status changed before the step", order)
	}
	if !strings.HasPrefix(strings.ReplaceAll(first, "frequency ", ""), "step status slew") {
		t.Errorf("entries %v, want the step, (frequencies,) the state change, then slews", order)
	}
	t.Logf("%d entries (%s), verified: %+v", len(entries), first, rep)
}

// TestRunSnapshotsOnDemand: the control socket's snapshot is built when
// it is read, not at the loop's last event. Between polls (16 s after
// the iburst) each of several reads is as fresh as the read itself; a
// snapshot built at the last event would be seconds old.
func TestRunSnapshotsOnDemand(t *testing.T) {
	srv := opstest.NewServer(t, 0, true)
	dir := t.TempDir()
	cfg := opstest.Config(t, dir, srv, "")
	data, _ := os.ReadFile(cfg)
	data = []byte(strings.NewReplacer("minpoll = 0", "minpoll = 4", "maxpoll = 0", "maxpoll = 4").Replace(string(data)))
	if err := os.WriteFile(cfg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "run", "control.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- daemon.Run(ctx, daemon.RunOptions{ConfigPath: cfg, NoClockControl: true}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := control.Query(ctx, sock, control.CommandStatus)
		if err == nil && r.Status.SyncState == control.StateSynchronised {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not synchronised after 30 s: %v %+v", err, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The daemon's clock is the null clock, within microseconds of ours
	// (the server's offset is 0); a read may share a snapshot up to
	// 100 ms old.
	const slack = 150 * time.Millisecond
	for range 6 {
		time.Sleep(400 * time.Millisecond)
		before := time.Now()
		r, err := control.Query(ctx, sock, control.CommandSources)
		after := time.Now()
		if err != nil {
			t.Fatal(err)
		}
		if r.Time.Before(before.Add(-slack)) || r.Time.After(after.Add(slack)) {
			t.Errorf("snapshot of %v read between %v and %v: not built for the read", r.Time, before, after)
		}
		if len(r.Sources) != 1 || r.Sources[0].LastSample == nil {
			t.Fatalf("sources %+v, want one with a sample", r.Sources)
		}
	}
}
