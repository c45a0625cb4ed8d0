// Command dropcheck is privdrop's test program: it loads a configuration,
// applies privdrop's plan for it, prints the Result as JSON, tries to
// create the files named on its command line (printing "ok" or the error
// for each), and waits for its standard input to close, so that the test
// can read /proc/PID/status while it runs.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/ntptool/ntptool/config"
	"github.com/ntptool/ntptool/privdrop"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dropcheck CONFIG [FILE-TO-CREATE...]")
		os.Exit(2)
	}
	cfg, err := config.Load(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	res, err := privdrop.Apply(privdrop.PlanFor(cfg, os.Args[1]), nil)
	out := struct {
		Result privdrop.Result
		Error  string
		Files  []string
	}{Result: res}
	if err != nil {
		out.Error = err.Error()
	}
	for _, f := range os.Args[2:] {
		msg := "ok"
		if fh, err := os.Create(f); err != nil {
			msg = err.Error()
		} else {
			fh.Close()
		}
		out.Files = append(out.Files, msg)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(1)
	}
	io.Copy(io.Discard, os.Stdin)
}
