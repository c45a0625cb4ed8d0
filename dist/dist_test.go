package dist

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ntptool/ntptool/config"
)

// skipOrFail skips, or fails when NTPTOOL_REQUIRE_PEERS=1 (CI), where the
// tools are installed and the test must run.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("NTPTOOL_REQUIRE_PEERS") == "1" {
		t.Fatalf(format+" (NTPTOOL_REQUIRE_PEERS=1: this test must run; .ci/run installs it)", args...)
	}
	t.Skipf(format, args...)
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			skipOrFail(t, "%s not installed", tool)
		}
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// files is every file the packages install (directories aside), by
// packager; man pages come from the command tree and are checked apart.
var files = map[string][]string{
	"deb": {
		"/etc/logrotate.d/ntptool", "/etc/ntptool.toml",
		"/lib/systemd/system/ntptool-wait-sync.service", "/lib/systemd/system/ntptool.service",
		"/usr/bin/ntptool",
		"/usr/share/bash-completion/completions/ntptool",
		"/usr/share/doc/ntptool/changelog.Debian.gz", "/usr/share/doc/ntptool/copyright", "/usr/share/doc/ntptool/examples/ntptool.rules",
		"/usr/share/fish/vendor_completions.d/ntptool.fish",
		"/usr/share/lintian/overrides/ntptool",
		"/usr/share/zsh/vendor-completions/_ntptool",
	},
	"rpm": {
		"/etc/logrotate.d/ntptool", "/etc/ntptool.toml",
		"/usr/bin/ntptool",
		"/usr/lib/systemd/system/ntptool-wait-sync.service", "/usr/lib/systemd/system/ntptool.service",
		"/usr/share/bash-completion/completions/ntptool",
		"/usr/share/doc/ntptool/copyright", "/usr/share/doc/ntptool/examples/ntptool.rules",
		"/usr/share/fish/vendor_completions.d/ntptool.fish",
		"/usr/share/zsh/site-functions/_ntptool",
	},
	"apk": {
		"/etc/init.d/ntptool", "/etc/logrotate.d/ntptool", "/etc/ntptool.toml",
		"/usr/bin/ntptool",
		"/usr/share/bash-completion/completions/ntptool",
		"/usr/share/doc/ntptool/copyright", "/usr/share/doc/ntptool/examples/ntptool.rules",
		"/usr/share/fish/vendor_completions.d/ntptool.fish",
		"/usr/share/zsh/site-functions/_ntptool",
	},
}

// manPages are the pages every package must have: one per command.
var manPages = []string{"ntptool", "ntptool-audit", "ntptool-check", "ntptool-config", "ntptool-config-check",
	"ntptool-config-default", "ntptool-config-import", "ntptool-query", "ntptool-serve", "ntptool-sim"}

// split separates man pages from the other files of a listing.
func split(t *testing.T, paths []string) (other, man []string) {
	t.Helper()
	for _, p := range paths {
		if name, ok := strings.CutPrefix(p, "/usr/share/man/man1/"); ok {
			if !strings.HasSuffix(name, ".1.gz") {
				t.Errorf("man page %s is not a gzipped section 1 page", p)
			}
			man = append(man, strings.TrimSuffix(name, ".1.gz"))
			continue
		}
		other = append(other, p)
	}
	slices.Sort(other)
	return other, man
}

func checkListing(t *testing.T, packager string, paths []string) {
	t.Helper()
	other, man := split(t, paths)
	if diff := cmp.Diff(files[packager], other); diff != "" {
		t.Errorf("%s files (-want +got)\n%s", packager, diff)
	}
	for _, m := range manPages {
		if !slices.Contains(man, m) {
			t.Errorf("%s: no man page %s(1); have %v", packager, m, man)
		}
	}
}

// TestPackages builds the .deb, .rpm and .apk with make package, and
// checks each one's files, relations and scripts with the format's own
// tools, and the .deb with lintian.
func TestPackages(t *testing.T) {
	need(t, "make", "go", "git", "dpkg-deb", "rpm", "lintian")
	root := repoRoot(t)
	out := t.TempDir()
	run(t, "make", "-C", root, "--no-print-directory", "package", "PKG_OUT="+out, "BIN="+filepath.Join(out, "ntptool"), "VERSION=0.1.0")
	deb := filepath.Join(out, "ntptool_0.1.0-1_amd64.deb")
	rpmFile := filepath.Join(out, "ntptool-0.1.0-1.x86_64.rpm")
	apk := filepath.Join(out, "ntptool_0.1.0-r1_x86_64.apk")
	for _, p := range []string{deb, rpmFile, apk} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("package not built: %v", err)
		}
		t.Logf("%s: %d bytes", filepath.Base(p), fi.Size())
	}

	t.Run("deb", func(t *testing.T) {
		info := run(t, "dpkg-deb", "--info", deb)
		for _, want := range []string{
			"Package: ntptool", "Version: 0.1.0-1", "Provides: time-daemon",
			"Conflicts: ntp, chrony, ntpsec, systemd-timesyncd", "Replaces: ntp, chrony, ntpsec, systemd-timesyncd",
			" preinst ", " postinst ", " prerm ", " postrm ", " conffiles ",
		} {
			if !strings.Contains(info, want) {
				t.Errorf("dpkg-deb --info lacks %q:\n%s", want, info)
			}
		}
		var paths []string
		for line := range strings.SplitSeq(run(t, "dpkg-deb", "--contents", deb), "\n") {
			f := strings.Fields(line)
			if len(f) == 6 && !strings.HasPrefix(f[0], "d") {
				paths = append(paths, strings.TrimPrefix(f[5], "."))
			}
		}
		checkListing(t, "deb", paths)
		conffiles := run(t, "sh", "-c", "dpkg-deb --ctrl-tarfile "+deb+" | tar -xO ./conffiles")
		if diff := cmp.Diff("/etc/logrotate.d/ntptool\n/etc/ntptool.toml\n", conffiles); diff != "" {
			t.Errorf("conffiles (-want +got)\n%s", diff)
		}
	})

	t.Run("lintian", func(t *testing.T) {
		cmd := exec.Command("lintian", "--fail-on", "error", deb)
		outb, err := cmd.CombinedOutput()
		t.Logf("lintian:\n%s", outb)
		if err != nil {
			t.Errorf("lintian reports errors (%v)", err)
		}
		if regexp.MustCompile(`(?m)^E: `).Match(outb) {
			t.Error("lintian printed an E: line")
		}
	})

	t.Run("rpm", func(t *testing.T) {
		paths := strings.Fields(run(t, "rpm", "-qpl", rpmFile))
		checkListing(t, "rpm", paths)
		provides := run(t, "rpm", "-qp", "--provides", rpmFile)
		conflicts := strings.Fields(run(t, "rpm", "-qp", "--conflicts", rpmFile))
		if !strings.Contains(provides, "time-daemon") {
			t.Errorf("provides %q lack time-daemon", provides)
		}
		if diff := cmp.Diff([]string{"ntp", "chrony", "ntpsec", "systemd-timesyncd"}, conflicts); diff != "" {
			t.Errorf("conflicts (-want +got)\n%s", diff)
		}
		scripts := run(t, "rpm", "-qp", "--scripts", rpmFile)
		for _, want := range []string{"preinstall scriptlet", "postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet", "useradd --system"} {
			if !strings.Contains(scripts, want) {
				t.Errorf("rpm scripts lack %q", want)
			}
		}
	})

	t.Run("apk", func(t *testing.T) {
		paths, pkginfo := readAPK(t, apk)
		checkListing(t, "apk", paths)
		for _, want := range []string{"pkgname = ntptool", "pkgver = 0.1.0-r1", "provides = time-daemon", "depend = !chrony",
			"depend = !ntp", "depend = !ntpsec", "depend = !systemd-timesyncd", "replaces = chrony"} {
			if !strings.Contains(pkginfo, want+"\n") {
				t.Errorf(".PKGINFO lacks %q:\n%s", want, pkginfo)
			}
		}
	})

	t.Run("binary", func(t *testing.T) {
		elf := run(t, "sh", "-c", "dpkg-deb --fsys-tarfile "+deb+" | tar -xO ./usr/bin/ntptool | head -c 64 | od -An -c | head -1")
		if !strings.Contains(elf, "E   L   F") {
			t.Errorf("/usr/bin/ntptool is not an ELF file: %q", elf)
		}
	})
}

// readAPK lists an .apk: gzip members (signature, control, data), each a
// tar stream; it returns the data's file paths and the .PKGINFO text.
func readAPK(t *testing.T, path string) (paths []string, pkginfo string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	zr, err := gzip.NewReader(br)
	if err != nil {
		t.Fatal(err)
	}
	for member := 0; ; member++ {
		zr.Multistream(false)
		var buf bytes.Buffer
		if _, err := io.Copy(&buf, zr); err != nil {
			t.Fatalf("apk member %d: %v", member, err)
		}
		tr := tar.NewReader(&buf)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("apk member %d: %v", member, err)
			}
			switch {
			case h.Name == ".PKGINFO":
				data, _ := io.ReadAll(tr)
				pkginfo = string(data)
			case strings.HasPrefix(h.Name, "."):
			case h.Typeflag == tar.TypeReg:
				paths = append(paths, "/"+strings.TrimPrefix(h.Name, "./"))
			}
		}
		if err := zr.Reset(br); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	return paths, pkginfo
}

// TestMaintainerScripts checks that no script starts the daemon behind
// policy-rc.d's back: the .deb starts and stops it only through
// deb-systemd-invoke (which asks policy-rc.d), the .rpm and .apk never
// start it; and that every script is valid POSIX sh.
func TestMaintainerScripts(t *testing.T) {
	need(t, "sh")
	scripts, err := filepath.Glob("pkg/scripts/*.sh")
	if err != nil || len(scripts) < 8 {
		t.Fatalf("scripts: %v %v", scripts, err)
	}
	starts := regexp.MustCompile(`(?m)^[^#]*\b(systemctl\s+(\S+\s+)*(start|restart|reload)\b|invoke-rc\.d|/etc/init\.d/ntptool\s|(^|[\s;])service\s+ntptool|rc-service\s+ntptool\s+start|openrc)`)
	for _, s := range scripts {
		t.Run(filepath.Base(s), func(t *testing.T) {
			run(t, "sh", "-n", s)
			data, err := os.ReadFile(s)
			if err != nil {
				t.Fatal(err)
			}
			text := string(data)
			for _, line := range strings.Split(text, "\n") {
				if strings.Contains(line, "echo ") {
					continue // a message to the admin, not a command
				}
				if m := starts.FindString(line); m != "" {
					t.Errorf("starts the daemon without deb-systemd-invoke: %q", strings.TrimSpace(line))
				}
			}
			if strings.HasPrefix(filepath.Base(s), "deb-post") && strings.Contains(text, "deb-systemd-invoke") &&
				!strings.Contains(text, `deb-systemd-invoke "$action" ntptool.service`) {
				t.Error("deb postinst does not start through deb-systemd-invoke")
			}
		})
	}
}

// TestSystemdUnits runs systemd-analyze verify and security on the units,
// with ExecStart pointing at a freshly built binary (verify checks that
// it is executable). systemd is not a peer: without it the test skips.
func TestSystemdUnits(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "ntptool")
	build := exec.Command("go", "build", "-o", bin, "../cmd/ntptool")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	var units []string
	for _, name := range []string{"ntptool.service", "ntptool-wait-sync.service"} {
		data, err := os.ReadFile(filepath.Join("systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, bytes.ReplaceAll(data, []byte("/usr/bin/ntptool"), []byte(bin)), 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, path)
	}
	out, err := exec.Command("systemd-analyze", append([]string{"verify", "--man=no"}, units...)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, u := range units {
		out, err := exec.Command("systemd-analyze", "security", "--offline=yes", u).CombinedOutput()
		if err != nil {
			t.Errorf("systemd-analyze security %s: %v\n%s", u, err, out)
			continue
		}
		m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+) (\S+)`).FindSubmatch(out)
		if m == nil {
			t.Errorf("no exposure level in:\n%s", out)
			continue
		}
		t.Logf("systemd-analyze security %s: %s %s", filepath.Base(u), m[1], m[2])
		if level := string(m[2]); level != "OK" && level != "SAFE" {
			t.Errorf("%s exposure %s %s, want OK or SAFE", filepath.Base(u), m[1], level)
		}
	}
}

// TestExampleConfig: the packaged /etc/ntptool.toml is valid, and its
// [run] user is the one the packages create.
func TestExampleConfig(t *testing.T) {
	c, err := config.Load("ntptool.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Run.User != "ntptool" || c.Audit.Journal != "/var/log/ntptool/audit.jsonl" || len(c.Sources) == 0 {
		t.Errorf("run.user %q, audit.journal %q, %d sources", c.Run.User, c.Audit.Journal, len(c.Sources))
	}
}

// TestOpenRCScript: valid sh, and it starts the daemon with the same
// command line as the systemd unit.
func TestOpenRCScript(t *testing.T) {
	need(t, "sh")
	run(t, "sh", "-n", "openrc/ntptool")
	data, err := os.ReadFile("openrc/ntptool")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`command="/usr/bin/ntptool"`, `command_args="run --config ${NTPTOOL_CONFIG}`, "--signal HUP", "checkpath --directory --mode 0750 --owner ntptool:ntptool"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("openrc/ntptool lacks %q", want)
		}
	}
}

// TestAuditRules: every clock system call is watched for both ABIs, the
// daemon's exclusion is limited to adjtimex by its own user without a
// login session, and exclusions come before the rules they carve out of
// (auditd's exit list stops at the first match).
func TestAuditRules(t *testing.T) {
	data, err := os.ReadFile("auditd/ntptool.rules")
	if err != nil {
		t.Fatal(err)
	}
	type rule struct{ action, arch, line string }
	var rules []rule
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		switch f[0] {
		case "-w":
		case "-a":
			arch := regexp.MustCompile(`-F arch=(b32|b64)`).FindStringSubmatch(line)
			if len(f) < 2 || (arch == nil && !strings.Contains(line, "-F dir=")) {
				t.Errorf("rule without an arch: %s", line)
				continue
			}
			r := rule{action: f[1], line: line}
			if arch != nil {
				r.arch = arch[1]
			}
			rules = append(rules, r)
		default:
			t.Errorf("not a rule: %s", line)
		}
	}
	watched := func(arch, syscall string) (never, always int) {
		never, always = -1, -1
		for i, r := range rules {
			if r.arch != arch || !regexp.MustCompile(`-S `+syscall+`\b`).MatchString(r.line) {
				continue
			}
			if r.action == "never,exit" && never < 0 {
				never = i
			}
			if r.action == "always,exit" && always < 0 {
				always = i
			}
		}
		return never, always
	}
	for _, arch := range []string{"b64", "b32"} {
		calls := []string{"adjtimex", "clock_adjtime", "settimeofday", "clock_settime"}
		if arch == "b32" {
			calls = append(calls, "stime")
		}
		for _, sc := range calls {
			never, always := watched(arch, sc)
			if always < 0 {
				t.Errorf("%s %s not recorded", arch, sc)
			}
			switch {
			case sc == "adjtimex" && (never < 0 || never > always):
				t.Errorf("%s adjtimex: the daemon's exclusion must come first (never at %d, always at %d)", arch, never, always)
			case sc != "adjtimex" && never >= 0:
				t.Errorf("%s %s is excluded for somebody: steps must always be recorded", arch, sc)
			}
		}
	}
	for _, r := range rules {
		if r.action == "never,exit" && !(strings.Contains(r.line, "-F uid=ntptool") && strings.Contains(r.line, "-F auid=4294967295")) {
			t.Errorf("exclusion not limited to the daemon (uid ntptool, no login): %s", r.line)
		}
	}
}

// TestDebPostinstHonoursPolicyRC runs the .deb postinst with the real
// deb-systemd-invoke, a policy-rc.d under DPKG_ROOT (where
// deb-systemd-invoke looks for it) and a fake systemctl and
// deb-systemd-helper that only log their arguments: the daemon is started
// when policy-rc.d allows it and never when it returns 101.
func TestDebPostinstHonoursPolicyRC(t *testing.T) {
	need(t, "sh", "perl", "deb-systemd-invoke")
	invoke, _ := exec.LookPath("deb-systemd-invoke")
	script, err := os.ReadFile("pkg/scripts/deb-postinst.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		policy string // policy-rc.d's exit code; "" for none
		args   []string
		want   string // the systemctl call that starts it; "" for none
	}{
		{"install, no policy-rc.d", "", []string{"configure", ""}, "--quiet --system start ntptool.service"},
		{"install, policy-rc.d allows", "0", []string{"configure", ""}, "--quiet --system start ntptool.service"},
		{"install, policy-rc.d forbids", "101", []string{"configure", ""}, ""},
		{"upgrade, policy-rc.d forbids", "101", []string{"configure", "0.0.9-1"}, ""},
		{"upgrade, policy-rc.d allows", "0", []string{"configure", "0.0.9-1"}, "--quiet --system restart ntptool.service"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			bin, root, booted := filepath.Join(dir, "bin"), filepath.Join(dir, "root"), filepath.Join(dir, "run-systemd-system")
			logf := filepath.Join(dir, "calls")
			for _, d := range []string{bin, filepath.Join(root, "usr/sbin"), booted} {
				must(t, os.MkdirAll(d, 0o755))
			}
			fake := func(name, body string) {
				must(t, os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\necho \""+name+" $*\" >> "+logf+"\n"+body), 0o755))
			}
			fake("systemctl", "case \"$*\" in *is-enabled*) echo enabled;; *is-active*) exit 3;; esac\nexit 0\n")
			fake("deb-systemd-helper", "exit 0\n")
			must(t, os.Symlink(invoke, filepath.Join(bin, "deb-systemd-invoke")))
			if tt.policy != "" {
				must(t, os.WriteFile(filepath.Join(root, "usr/sbin/policy-rc.d"), []byte("#!/bin/sh\nexit "+tt.policy+"\n"), 0o755))
			}
			// The script's test for a booted systemd points at a directory
			// of the test's, so that it runs the same on any host.
			s := strings.ReplaceAll(string(script), "/run/systemd/system", booted)
			path := filepath.Join(dir, "postinst")
			must(t, os.WriteFile(path, []byte(s), 0o755))
			cmd := exec.Command("sh", append([]string{path}, tt.args...)...)
			cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "DPKG_ROOT="+root)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("postinst: %v\n%s", err, out)
			}
			data, _ := os.ReadFile(logf)
			var starts []string
			for line := range strings.SplitSeq(string(data), "\n") {
				if rest, ok := strings.CutPrefix(line, "systemctl "); ok && regexp.MustCompile(`\b(start|restart)\b`).MatchString(rest) {
					starts = append(starts, rest)
				}
			}
			var want []string
			if tt.want != "" {
				want = []string{tt.want}
			}
			if diff := cmp.Diff(want, starts); diff != "" {
				t.Errorf("systemctl start calls (-want +got)\n%s\nall calls:\n%s", diff, data)
			}
			if !strings.Contains(string(data), "systemctl --system daemon-reload") {
				t.Errorf("no daemon-reload:\n%s", data)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
