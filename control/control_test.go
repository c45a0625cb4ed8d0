package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// fakeSnapshot is a daemon synchronised to ntp1 with a pool member
// unreachable and a falseticker.
func fakeSnapshot() *Snapshot {
	t0 := time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)
	return &Snapshot{
		Schema: SchemaVersion,
		Time:   t0,
		Status: Status{
			SyncState: StateSynchronised, ClockControl: true,
			ReferenceID: "C0000201", ReferenceName: "ntp1.example.net", ReferenceAddress: "192.0.2.1:123",
			Stratum: 3, RefTime: t0.Add(-23 * time.Second),
			SystemTimeOffsetSeconds: 1.234e-6, LastOffsetSeconds: -4.56e-7, RMSOffsetSeconds: 1e-6,
			FrequencyPPM: 12.345, ResidualFrequencyPPM: 0.001, SkewPPM: 0.01,
			RootDelaySeconds: 0.000456, RootDispersionSeconds: 0.000123, UpdateIntervalSeconds: 64.2,
			Leap: LeapNormal, NextPollSeconds: 12.3,
		},
		Sources: []Source{
			{State: SourceSelected, Tally: "*", Name: "ntp1.example.net", Address: "192.0.2.1:123", Stratum: 2, Reach: 0o377, ReachOctal: "377", PollLog2: 6,
				LastSample: &Sample{AgeSeconds: 23, OffsetSeconds: 12e-6, MeasuredOffsetSeconds: 15e-6, ErrorSeconds: 200e-6, DelaySeconds: 250e-6, JitterSeconds: 15.2e-6}},
			{State: SourceUnreachable, Tally: "?", Name: "pool.example.net", Address: "198.51.100.9:123", Pool: true, Reach: 0, ReachOctal: "0", PollLog2: 6},
			{State: SourceFalseticker, Tally: "x", Name: "liar.example.net", Address: "[2001:db8::1]:123", Stratum: 1, Reach: 0o17, ReachOctal: "17", PollLog2: 7,
				LastSample: &Sample{AgeSeconds: 700, OffsetSeconds: 0.5, MeasuredOffsetSeconds: 0.5, ErrorSeconds: 1e-3, DelaySeconds: 2e-3, JitterSeconds: 1e-4}},
		},
	}
}

// serve starts a server on a fresh socket path and returns it.
func serve(t *testing.T, pub *Publisher, opt Options) *Server {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "ntptool", "control.sock")
	s, err := Listen(path, pub, opt)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestQueryRoundTrip(t *testing.T) {
	var pub Publisher
	snap := fakeSnapshot()
	pub.Publish(snap)
	s := serve(t, &pub, Options{})
	tests := []struct {
		command string
		want    Reply
	}{
		{CommandStatus, Reply{Schema: 1, Time: snap.Time, Status: &snap.Status}},
		{CommandSources, Reply{Schema: 1, Time: snap.Time, Sources: snap.Sources}},
		{CommandSnapshot, Reply{Schema: 1, Time: snap.Time, Status: &snap.Status, Sources: snap.Sources}},
	}
	for _, tc := range tests {
		t.Run(tc.command, func(t *testing.T) {
			got, err := Query(ctx(t), s.Path(), tc.command)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, *got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	// No sources is an empty list, not a missing key.
	pub.Publish(&Snapshot{Schema: 1, Time: snap.Time})
	raw := rawQuery(t, s.Path(), `{"command":"sources"}`+"\n")
	if !strings.Contains(raw, `"sources":[]`) || strings.Contains(raw, `"status"`) {
		t.Errorf("reply %s", raw)
	}
}

// The JSON keys are the contract of docs/control.md.
func TestJSONKeys(t *testing.T) {
	b, err := json.Marshal(fakeSnapshot())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	keys := func(v any) []string {
		var ks []string
		for k := range v.(map[string]any) {
			ks = append(ks, k)
		}
		return ks
	}
	sortStrings := cmpopts.SortSlices(func(a, b string) bool { return a < b })
	wantStatus := []string{"sync_state", "clock_control", "reference_id", "reference_name", "reference_address", "stratum", "ref_time",
		"system_time_offset_seconds", "last_offset_seconds", "rms_offset_seconds", "frequency_ppm", "residual_frequency_ppm", "skew_ppm",
		"root_delay_seconds", "root_dispersion_seconds", "update_interval_seconds", "leap", "last_error", "next_poll_seconds"}
	if diff := cmp.Diff(wantStatus, keys(m["status"]), sortStrings); diff != "" {
		t.Errorf("status keys (-want +got):\n%s", diff)
	}
	src := m["sources"].([]any)
	wantSource := []string{"state", "tally", "name", "address", "pool", "stratum", "reach", "reach_octal", "poll_log2", "last_sample"}
	if diff := cmp.Diff(wantSource, keys(src[0]), sortStrings); diff != "" {
		t.Errorf("source keys (-want +got):\n%s", diff)
	}
	wantSample := []string{"age_seconds", "offset_seconds", "measured_offset_seconds", "error_seconds", "delay_seconds", "jitter_seconds"}
	if diff := cmp.Diff(wantSample, keys(src[0].(map[string]any)["last_sample"]), sortStrings); diff != "" {
		t.Errorf("sample keys (-want +got):\n%s", diff)
	}
	if _, ok := src[1].(map[string]any)["last_sample"]; ok {
		t.Error("a source without a sample has last_sample")
	}
}

func TestNoSnapshotYet(t *testing.T) {
	s := serve(t, &Publisher{}, Options{})
	_, err := Query(ctx(t), s.Path(), CommandStatus)
	if !errors.Is(err, ErrServer) || !strings.Contains(err.Error(), ErrNoSnapshot.Error()) {
		t.Errorf("err = %v", err)
	}
}

// rawQuery writes req as is and returns the reply line.
func rawQuery(t *testing.T, path, req string) string {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if req != "" {
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
	}
	if uc, ok := c.(*net.UnixConn); ok && !strings.HasSuffix(req, "\n") && len(req) <= MaxRequestBytes {
		uc.CloseWrite() // EOF ends the request
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the reply to %q: %v", req, err)
	}
	return line
}

// Every bad request gets a JSON error reply.
func TestBadRequestsAnswered(t *testing.T) {
	var pub Publisher
	pub.Publish(fakeSnapshot())
	s := serve(t, &pub, Options{Timeout: 200 * time.Millisecond})
	tests := []struct{ name, req, want string }{
		{"empty", "\n", "empty request"},
		{"EOF at once", "", "empty request"},
		{"not JSON", "status\n", "bad request"},
		{"truncated JSON", `{"command":`, "bad request"},
		{"unknown command", `{"command":"settime"}` + "\n", `unknown command \"settime\"`},
		{"unknown key", `{"command":"status","force":true}` + "\n", "unknown field"},
		{"two values", `{"command":"status"}{"command":"status"}` + "\n", "more than one"},
		{"no command", "{}\n", "no command"},
		{"array", `["status"]` + "\n", "bad request"},
		{"too long", `{"command":"` + strings.Repeat("a", 2*MaxRequestBytes) + `"}` + "\n", "longer than"},
		{"without newline, EOF", `{"command":"status"}`, `"stratum":3`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := rawQuery(t, s.Path(), tc.req)
			var r Reply
			if err := json.Unmarshal([]byte(got), &r); err != nil {
				t.Fatalf("reply is not JSON: %q", got)
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("reply %s, want %q in it", got, tc.want)
			}
		})
	}
	// A client that sends nothing is answered when the timeout ends.
	c, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.Contains(line, "timeout") {
		t.Errorf("silent client got %q, %v", line, err)
	}
}

// Many clients at once while the loop keeps publishing: every reply is
// one of the published snapshots, whole.
func TestConcurrentClients(t *testing.T) {
	var pub Publisher
	first := fakeSnapshot()
	first.Status.NextPollSeconds = float64(first.Status.Stratum)
	pub.Publish(first)
	s := serve(t, &pub, Options{MaxClients: 64})
	stop := make(chan struct{})
	var pubWG sync.WaitGroup
	pubWG.Add(1)
	go func() {
		defer pubWG.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			snap := fakeSnapshot()
			snap.Status.Stratum = 2 + i%10
			snap.Status.NextPollSeconds = float64(snap.Status.Stratum) // paired: a torn read would break it
			pub.Publish(snap)
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 32*10)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				r, err := Query(context.Background(), s.Path(), CommandSnapshot)
				if err != nil {
					errs <- err
					return
				}
				if float64(r.Status.Stratum) != r.Status.NextPollSeconds || len(r.Sources) != 3 {
					errs <- fmt.Errorf("torn snapshot: stratum %d next %v sources %d", r.Status.Stratum, r.Status.NextPollSeconds, len(r.Sources))
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	pubWG.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Over MaxClients a client is told the server is busy.
func TestBusy(t *testing.T) {
	var pub Publisher
	pub.Publish(fakeSnapshot())
	s := serve(t, &pub, Options{MaxClients: 1, Timeout: 5 * time.Second})
	s.sem <- struct{}{} // a client being served holds the only slot
	_, err := Query(ctx(t), s.Path(), CommandStatus)
	if !errors.Is(err, ErrServer) || !strings.Contains(err.Error(), "busy") {
		t.Errorf("over the limit: %v, want busy", err)
	}
	<-s.sem
	if _, err := Query(ctx(t), s.Path(), CommandStatus); err != nil {
		t.Errorf("with the slot free: %v", err)
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // a crashed daemon's socket: the file stays, nobody answers
	var pub Publisher
	pub.Publish(fakeSnapshot())
	s, err := Listen(path, &pub, Options{})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer s.Close()
	go s.Serve()
	if _, err := Query(ctx(t), path, CommandStatus); err != nil {
		t.Error(err)
	}
	// A live one is not.
	if _, err := Listen(path, &pub, Options{}); !errors.Is(err, ErrInUse) {
		t.Errorf("second Listen: %v, want ErrInUse", err)
	}
}

func TestListenRefusesNonSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path, &Publisher{}, Options{}); !errors.Is(err, ErrNotSocket) {
		t.Errorf("err = %v, want ErrNotSocket", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Error("the file was touched")
	}
	if _, err := Listen(filepath.Join(t.TempDir(), strings.Repeat("d", 120)), &Publisher{}, Options{}); err == nil {
		t.Error("a path too long for sun_path was accepted")
	}
}

func TestSocketModeAndGroup(t *testing.T) {
	gid := os.Getgid()
	g, err := user.LookupGroupId(strconv.Itoa(gid))
	if err != nil {
		t.Skipf("no name for gid %d: %v", gid, err)
	}
	groups := []struct{ name, group string }{{"own group by name", g.Name}, {"numeric", strconv.Itoa(gid)}}
	if os.Geteuid() == 0 {
		if other, err := user.LookupGroup("daemon"); err == nil {
			groups = append(groups, struct{ name, group string }{"another group (root)", other.Name})
		}
	}
	for _, tc := range groups {
		t.Run(tc.name, func(t *testing.T) {
			s := serve(t, &Publisher{}, Options{Group: tc.group})
			fi, err := os.Lstat(s.Path())
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o660 {
				t.Errorf("mode %v, want a socket with 0660", fi.Mode())
			}
			want, _ := lookupGroup(tc.group)
			if got := int(fi.Sys().(*syscall.Stat_t).Gid); got != want {
				t.Errorf("group %d, want %d", got, want)
			}
			if dir, _ := os.Stat(filepath.Dir(s.Path())); !dir.IsDir() {
				t.Error("parent directory not created")
			}
		})
	}
	if _, err := Listen(filepath.Join(t.TempDir(), "c.sock"), &Publisher{}, Options{Group: "no-such-group-ntptool"}); err == nil {
		t.Error("an unknown group was accepted")
	}
}

// Close removes the socket file, but not a newer daemon's at the same path.
func TestCloseRemovesOnlyItsSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	s1, err := Listen(path, &Publisher{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left after Close: %v", err)
	}
	s1, err = Listen(path, &Publisher{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path) // an operator, or a newer daemon replacing it
	s2, err := Listen(path, &Publisher{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s1.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("the newer socket was removed: %v", err)
	}
	s2.Close()
}

func TestParseRequest(t *testing.T) {
	for _, c := range []string{CommandStatus, CommandSources, CommandSnapshot} {
		r, err := ParseRequest([]byte(`  {"command": "` + c + `"}` + "\r\n"))
		if err != nil || r.Command != c {
			t.Errorf("%s: %+v %v", c, r, err)
		}
	}
	for _, bad := range []string{"", "null", `{"command":null}`, `{"command":1}`, `{"Command":"status","command":"x"}`, "\x00", `{"command":"status"} x`} {
		if _, err := ParseRequest([]byte(bad)); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%q: err %v, want ErrBadRequest", bad, err)
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{`{"command":"status"}`, `{"command":"sources"}`, "{}", `{"command":"x","y":1}`, "[", "\n", `"status"`} {
		f.Add([]byte(s))
	}
	snap := fakeSnapshot()
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Errorf("error %v is not ErrBadRequest", err)
			}
			return
		}
		switch r.Command {
		case CommandStatus, CommandSources, CommandSnapshot:
		default:
			t.Errorf("accepted command %q", r.Command)
		}
		if _, err := json.Marshal(Answer(r, snap)); err != nil {
			t.Error(err)
		}
	})
}

func TestAnswer(t *testing.T) {
	snap := fakeSnapshot()
	if r := Answer(Request{Command: CommandStatus}, nil); r.Error == "" || r.Status != nil {
		t.Errorf("no snapshot: %+v", r)
	}
	r := Answer(Request{Command: CommandStatus}, snap)
	r.Status.Stratum = 99 // the reply's copy, not the snapshot
	if snap.Status.Stratum != 3 {
		t.Error("Answer shares the snapshot's status")
	}
}

// Close ends a connection in progress instead of waiting out its timeout.
func TestCloseEndsConnections(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	s, err := Listen(path, &Publisher{}, Options{Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(`{"comm`)); err != nil { // half a request, then silence
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
		t.Error("the connection still answers after Close")
	}
}
