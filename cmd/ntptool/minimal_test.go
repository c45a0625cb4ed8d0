package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ntptool/ntptool/internal/peers"
)

// The minimal build (-tags nometrics, make build-minimal) leaves the
// Prometheus, protobuf and HTTP code out, and its daemon refuses a
// configuration that asks for metrics, naming the cause, instead of
// running without what the operator asked for.
func TestMinimalBuild(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "ntptool-minimal")
	build := exec.Command("go", "build", "-tags", "nometrics", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags nometrics: %v\n%s", err, out)
	}
	out, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, out)
	}
	for _, mod := range []string{"github.com/prometheus/", "google.golang.org/protobuf"} {
		if strings.Contains(string(out), mod) {
			t.Errorf("the minimal build links %s", mod)
		}
	}

	for _, tt := range []struct {
		name, metrics string
		wantExit      int
		wantErr       string
	}{
		{"metrics asked for", `listen = "127.0.0.1:0"`, exitFailure, `metrics.listen "127.0.0.1:0": this ntptool was built without metrics (-tags nometrics)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conf := filepath.Join(dir, "ntptool.toml")
			text := "driftfile = \"\"\n\n[control]\nsocket = \"\"\n\n[audit]\njournal = \"\"\n\n[metrics]\n" + tt.metrics + "\n\n[[source]]\nserver = \"127.0.0.1\"\nport = 9\n"
			if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			argv := peers.NoCap(bin, "run", "--config", conf, "--no-clock-control")
			cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != tt.wantExit {
				t.Fatalf("exit %v, want %d; stderr:\n%s", err, tt.wantExit, &stderr)
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr does not say %q:\n%s", tt.wantErr, &stderr)
			}
		})
	}
}
