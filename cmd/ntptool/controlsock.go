package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/ntptool/ntptool/config"
	"github.com/ntptool/ntptool/control"
	"github.com/spf13/cobra"
)

// socketFlags are the flags of the commands that talk to the daemon's
// control socket (status, sources, wait-sync).
type socketFlags struct {
	socket string
	config string
}

func (f *socketFlags) register(cmd *cobra.Command) {
	def := config.Default().Control.Socket
	cmd.Flags().StringVar(&f.socket, "socket", "", "the daemon's control socket (default: [control] socket of --config, else "+def+")")
	cmd.Flags().StringVar(&f.config, "config", "", "read the socket path from this config file's [control] section")
}

// path resolves the socket: --socket, else --config's [control] socket,
// else the default.
func (f *socketFlags) path() (string, error) {
	if f.socket != "" {
		return f.socket, nil
	}
	if f.config == "" {
		return config.Default().Control.Socket, nil
	}
	// The daemon's own file: TOML, or an ntp.conf or chrony.conf run as
	// it is (whose socket is then the default).
	c, _, err := config.LoadAny(f.config)
	if err != nil {
		return "", &exitError{code: exitUsage, err: err}
	}
	if c.Control.Socket == "" {
		return "", usageError("%s disables the control socket ([control] socket = \"\"): nothing to ask", f.config)
	}
	return c.Control.Socket, nil
}

// query asks the daemon one command; a failure exits 1.
func (f *socketFlags) query(ctx context.Context, command string) (*control.Reply, error) {
	path, err := f.path()
	if err != nil {
		return nil, err
	}
	r, err := control.Query(ctx, path, command)
	if err != nil {
		return nil, &exitError{code: exitFailure, err: err}
	}
	return r, nil
}

// writeControlJSON prints v indented, as the other --json outputs.
func writeControlJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return &exitError{code: exitFailure, err: fmt.Errorf("write JSON: %w", err)}
	}
	return nil
}

// errNoStatus: a reply without the part asked for (a daemon of another
// version).
var errNoStatus = errors.New("the daemon's reply has no status")
