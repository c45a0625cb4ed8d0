package privdrop

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"kernel.org/pub/linux/libs/security/libcap/cap"

	"github.com/ntptool/ntptool/config"
)

func TestCaps(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(c *config.Config)
		want []cap.Value
	}{
		{"defaults: clock control, no server", func(c *config.Config) {}, []cap.Value{cap.SYS_TIME}},
		{"no clock control", func(c *config.Config) { c.Clock.Control = false }, nil},
		{"server on 123", func(c *config.Config) { c.Server.Enabled = true }, []cap.Value{cap.SYS_TIME, cap.NET_BIND_SERVICE}},
		{"server configured but disabled", func(c *config.Config) { c.Server.Listen = []string{"127.0.0.1:123"} }, []cap.Value{cap.SYS_TIME}},
		{"server on 1123 only", func(c *config.Config) {
			c.Clock.Control = false
			c.Server.Enabled, c.Server.Listen = true, []string{"127.0.0.1:1123", "[::1]:1123"}
		}, nil},
		{"server on 1023 and 1123", func(c *config.Config) {
			c.Clock.Control = false
			c.Server.Enabled, c.Server.Listen = true, []string{"127.0.0.1:1123", "[::1]:1023"}
		}, []cap.Value{cap.NET_BIND_SERVICE}},
		{"server on port 0", func(c *config.Config) {
			c.Clock.Control = false
			c.Server.Enabled, c.Server.Listen = true, []string{"127.0.0.1:0"}
		}, nil},
		{"metrics on 9123", func(c *config.Config) { c.Metrics.Listen = "127.0.0.1:9123" }, []cap.Value{cap.SYS_TIME}},
		{"metrics on 80", func(c *config.Config) { c.Clock.Control = false; c.Metrics.Listen = ":80" }, []cap.Value{cap.NET_BIND_SERVICE}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			tt.edit(&c)
			if diff := cmp.Diff(tt.want, Caps(&c)); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestPlanFor(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(c *config.Config)
		want Plan
	}{
		{"defaults", func(c *config.Config) { c.Run.User = "ntptool" }, Plan{
			User: "ntptool", Caps: []cap.Value{cap.SYS_TIME},
			Landlock: &Paths{
				RWDirs:  []string{"/var/lib/ntptool", "/var/log/ntptool", "/run/ntptool", "/run", "/var/lib", "/tmp"},
				RODirs:  slices.Concat(systemDirs, procDirs),
				RWFiles: []string{"/dev/null"},
				ROFiles: []string{"/proc/stat", "/etc/ntptool.toml"},
			}}},
		{"no hooks, shared directory, no control socket", func(c *config.Config) {
			c.Hooks.DHCPRenew = "off"
			c.DriftFile, c.Audit.Journal, c.Control.Socket = "/srv/ntp/drift", "/srv/ntp/audit.jsonl", ""
		}, Plan{
			Caps: []cap.Value{cap.SYS_TIME},
			Landlock: &Paths{
				RWDirs:  []string{"/srv/ntp"},
				RODirs:  slices.Concat(systemDirs, procDirs),
				RWFiles: []string{"/dev/null"},
				ROFiles: []string{"/proc/stat", "/etc/ntptool.toml"},
			}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			tt.edit(&c)
			if diff := cmp.Diff(tt.want, PlanFor(&c, "/etc/ntptool.toml")); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
	// Hooks in a helper process: their directories stay closed, the
	// daemon's own stay open.
	c := config.Default()
	c.Run.User = "ntptool"
	want := []string{"/var/lib/ntptool", "/var/log/ntptool", "/run/ntptool"}
	if diff := cmp.Diff(want, PlanWithHookHelper(&c, "/etc/ntptool.toml").Landlock.RWDirs); diff != "" {
		t.Errorf("with a hook helper, RWDirs (-want +got)\n%s", diff)
	}
}

// skipOrFail skips, or fails when NTPTOOL_REQUIRE_PEERS=1 (CI), where the
// test must run.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("NTPTOOL_REQUIRE_PEERS") == "1" {
		t.Fatalf(format+" (NTPTOOL_REQUIRE_PEERS=1: this test must run)", args...)
	}
	t.Skipf(format, args...)
}

// buildDropcheck builds the test program as the daemon is built: static,
// without cgo (so libcap's psx uses the Go runtime's all-threads syscalls).
func buildDropcheck(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "dropcheck")
	cmd := exec.Command("go", "build", "-o", bin, "./internal/dropcheck")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build dropcheck: %v\n%s", err, out)
	}
	return bin
}

// procStatus is what the test reads from /proc/PID/status.
type procStatus struct {
	Uid, Gid, Groups                       string
	CapInh, CapPrm, CapEff, CapBnd, CapAmb string
	NoNewPrivs                             string
}

func readStatus(t *testing.T, pid int) procStatus {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var st procStatus
	for line := range strings.SplitSeq(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.Join(strings.Fields(v), " ")
		switch k {
		case "Uid":
			st.Uid = v
		case "Gid":
			st.Gid = v
		case "Groups":
			st.Groups = v
		case "CapInh":
			st.CapInh = v
		case "CapPrm":
			st.CapPrm = v
		case "CapEff":
			st.CapEff = v
		case "CapBnd":
			st.CapBnd = v
		case "CapAmb":
			st.CapAmb = v
		case "NoNewPrivs":
			st.NoNewPrivs = v
		}
	}
	return st
}

// childOutput is dropcheck's JSON.
type childOutput struct {
	Result Result
	Error  string
	Files  []string
}

// runDropcheck runs dropcheck under setpriv with CAP_SYS_TIME outside its
// bounding set (so that nothing it does can reach the clock), reads its
// output and its /proc status while it waits, then ends it.
func runDropcheck(t *testing.T, bin, cfgPath string, files ...string) (childOutput, procStatus) {
	t.Helper()
	return runDropcheckAs(t, nil, bin, cfgPath, files...)
}

// runDropcheckAs is runDropcheck with more setpriv options (user, caps).
func runDropcheckAs(t *testing.T, setpriv []string, bin, cfgPath string, files ...string) (childOutput, procStatus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append(append([]string{"--bounding-set", "-sys_time"}, setpriv...), "--", bin, cfgPath)
	cmd := exec.CommandContext(ctx, "setpriv", append(args, files...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("dropcheck: %v\n%s", err, stderr.String())
		}
	}()
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		t.Fatalf("dropcheck output: %v\n%s", err, stderr.String())
	}
	var out childOutput
	if err := json.Unmarshal(line, &out); err != nil {
		t.Fatalf("dropcheck output %q: %v", line, err)
	}
	return out, readStatus(t, cmd.Process.Pid)
}

// TestApplyAsRoot runs the drop for real in a child started as root with
// CAP_SYS_TIME removed from its bounding set: it must switch user and
// group and hold exactly the capabilities the plan keeps (none without
// clock control). Keeping CAP_SYS_TIME itself is checked in the guest VM.
func TestApplyAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		skipOrFail(t, "setpriv (util-linux) not installed")
	}
	nobody, err := lookupNobody()
	if err != nil {
		skipOrFail(t, "%v", err)
	}
	// A world-traversable directory, so that the dropped child reaches it.
	base, err := os.MkdirTemp("", "privdrop-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	must(t, os.Chmod(base, 0o755))
	state := filepath.Join(base, "state")  // the daemon's: writable for it
	other := filepath.Join(base, "other")  // root's, 0755: not the daemon's
	open := filepath.Join(base, "anybody") // 0777: only Landlock stops writes
	must(t, os.Mkdir(state, 0o777))
	must(t, os.Mkdir(other, 0o755))
	must(t, os.Mkdir(open, 0o777))
	must(t, os.Chmod(state, 0o777))
	must(t, os.Chmod(open, 0o777))
	bin := buildDropcheck(t, base)
	conf := func(name, body string) string {
		path := filepath.Join(base, name+".toml")
		full := fmt.Sprintf("driftfile = %q\n[audit]\njournal = %q\n[control]\nsocket = %q\n[hooks]\ndhcp_renew = \"off\"\n%s",
			filepath.Join(state, "drift"), filepath.Join(state, "audit.jsonl"), filepath.Join(state, "control.sock"), body)
		must(t, os.WriteFile(path, []byte(full), 0o644))
		return path
	}
	const noCaps = "0000000000000000"
	netBind := fmt.Sprintf("%016x", uint64(1)<<cap.NET_BIND_SERVICE)

	t.Run("user nobody, no clock control: no capability at all", func(t *testing.T) {
		out, st := runDropcheck(t, bin, conf("nobody", "[clock]\ncontrol = false\n[run]\nuser = \"nobody\"\n"),
			filepath.Join(state, "x"), filepath.Join(open, "x"))
		if out.Error != "" {
			t.Fatalf("Apply: %s", out.Error)
		}
		want := procStatus{
			Uid: nobody.ids(), Gid: nobody.gids(), Groups: "",
			CapInh: noCaps, CapPrm: noCaps, CapEff: noCaps, CapBnd: noCaps, CapAmb: noCaps,
			NoNewPrivs: st.NoNewPrivs,
		}
		if diff := cmp.Diff(want, st); diff != "" {
			t.Errorf("/proc status (-want +got)\n%s", diff)
		}
		wantFiles := []string{"ok", "open " + filepath.Join(open, "x") + ": permission denied"}
		if !out.Result.Landlocked {
			wantFiles[1] = "ok"
			t.Logf("Landlock not applied: %v", out.Result.NotApplied)
		}
		if diff := cmp.Diff(wantFiles, out.Files); diff != "" {
			t.Errorf("file creation after the drop (-want +got)\n%s", diff)
		}
		t.Logf("result %+v", out.Result)
	})

	t.Run("user nobody, server on port 123: only CAP_NET_BIND_SERVICE", func(t *testing.T) {
		out, st := runDropcheck(t, bin, conf("net", "[clock]\ncontrol = false\n[server]\nenabled = true\nlisten = [\"127.0.0.1:123\"]\n[run]\nuser = \"nobody\"\n"))
		if out.Error != "" {
			t.Fatalf("Apply: %s", out.Error)
		}
		got := []string{st.Uid, st.CapInh, st.CapPrm, st.CapEff, st.CapBnd, st.CapAmb}
		want := []string{nobody.ids(), noCaps, netBind, netBind, netBind, noCaps}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("uid, CapInh, CapPrm, CapEff, CapBnd, CapAmb (-want +got)\n%s", diff)
		}
		if diff := cmp.Diff([]string{"cap_net_bind_service"}, out.Result.Caps); diff != "" {
			t.Errorf("Result.Caps (-want +got)\n%s", diff)
		}
	})

	t.Run("clock control without CAP_SYS_TIME is an error", func(t *testing.T) {
		out, st := runDropcheck(t, bin, conf("clock", "[run]\nuser = \"nobody\"\n"))
		if !strings.Contains(out.Error, "a needed capability is not permitted: cap_sys_time") {
			t.Errorf("Apply error %q, want cap_sys_time not permitted", out.Error)
		}
		if st.Uid == nobody.ids() {
			t.Errorf("switched user although Apply failed: %s", st.Uid)
		}
	})

	// As systemd starts it: already the user, the capabilities of
	// AmbientCapabilities= in every set but the bounding one untouched.
	asSystemd := []string{"--reuid", strconv.Itoa(nobody.uid), "--regid", strconv.Itoa(nobody.gid), "--clear-groups",
		"--inh-caps", "+net_bind_service", "--ambient-caps", "+net_bind_service"}
	t.Run("started as the user with ambient capabilities: keeps the needed one", func(t *testing.T) {
		out, st := runDropcheckAs(t, asSystemd, bin, conf("amb", "[clock]\ncontrol = false\n[server]\nenabled = true\nlisten = [\"127.0.0.1:123\"]\n[run]\nuser = \"nobody\"\n"))
		if out.Error != "" {
			t.Fatalf("Apply: %s", out.Error)
		}
		got := []string{st.Uid, st.CapInh, st.CapPrm, st.CapEff, st.CapAmb}
		want := []string{nobody.ids(), noCaps, netBind, netBind, noCaps}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("uid, CapInh, CapPrm, CapEff, CapAmb (-want +got)\n%s", diff)
		}
		if len(out.Result.NotApplied) == 0 || !strings.Contains(out.Result.NotApplied[0], "bounding set not reduced") {
			t.Errorf("NotApplied %v, want the bounding set named", out.Result.NotApplied)
		}
	})
	t.Run("started as the user with an ambient capability it does not need: drops it", func(t *testing.T) {
		out, st := runDropcheckAs(t, asSystemd, bin, conf("amb2", "[clock]\ncontrol = false\n"))
		if out.Error != "" {
			t.Fatalf("Apply: %s", out.Error)
		}
		if st.CapPrm != noCaps || st.CapEff != noCaps || st.CapAmb != noCaps || st.CapInh != noCaps {
			t.Errorf("status %+v, want no capability", st)
		}
	})

	t.Run("root stays root with no capability, Landlock confines it", func(t *testing.T) {
		out, st := runDropcheck(t, bin, conf("root", "[clock]\ncontrol = false\n"),
			filepath.Join(state, "y"), filepath.Join(other, "y"))
		if out.Error != "" {
			t.Fatalf("Apply: %s", out.Error)
		}
		if st.Uid != "0 0 0 0" || st.CapEff != noCaps || st.CapPrm != noCaps || st.CapBnd != noCaps {
			t.Errorf("status %+v, want uid 0 and no capability", st)
		}
		if out.Result.Landlocked {
			// root owns "other", so only Landlock can refuse the write.
			want := []string{"ok", "open " + filepath.Join(other, "y") + ": permission denied"}
			if diff := cmp.Diff(want, out.Files); diff != "" {
				t.Errorf("file creation (-want +got)\n%s", diff)
			}
		} else if abi := landlockABI(); abi > 0 {
			t.Errorf("Landlock ABI %d but not applied: %v", abi, out.Result.NotApplied)
		}
	})
}

// landlockABI is the kernel's Landlock ABI, 0 if none.
func landlockABI() int {
	abi, err := llsys.LandlockGetABIVersion()
	if err != nil {
		return 0
	}
	return abi
}

type account struct{ uid, gid int }

func (a account) ids() string {
	return strings.Repeat(strconv.Itoa(a.uid)+" ", 3) + strconv.Itoa(a.uid)
}
func (a account) gids() string {
	return strings.Repeat(strconv.Itoa(a.gid)+" ", 3) + strconv.Itoa(a.gid)
}

func lookupNobody() (account, error) {
	uid, gid, err := lookup("nobody")
	if err != nil {
		return account{}, fmt.Errorf("no user nobody: %v", err)
	}
	return account{uid, gid}, nil
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
