package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ntptool/ntptool/audit"
	"github.com/ntptool/ntptool/config"
)

// auditFlags are the flags of the audit command.
type auditFlags struct {
	config string
	since  string
	json   bool
	verify bool
}

func newAuditCmd() *cobra.Command {
	var f auditFlags
	cmd := &cobra.Command{
		Use:   "audit [--since T] [--json] [--verify] [FILE...]",
		Short: "Print or verify the audit journal of clock changes",
		Long: `audit prints the daemon's journal of clock changes (steps, slews, frequency,
status and leap changes, and changes made by other processes), one line each,
or checks that it was not changed (--verify).

FILE defaults to the [audit] journal of --config (or the built-in default,
/var/log/ntptool/audit.jsonl) and its rotated files beside it (FILE.1,
FILE.2.gz, FILE-20261125, ...). Files may be given in any order and may be
gzip-compressed: they are put in chain order.

--verify follows the hash chain: every line holds the SHA-256 of the line
before, and every entry a sequence number one above the last. It prints a
summary and exits 0, or names the first broken line (FILE:LINE: what is
wrong: changed, entries missing, torn) and exits 1. When FILE.head exists
(the daemon rewrites it after each entry) the journal must reach it, which
catches lines cut from the end. Torn lines the daemon recovered from after
a crash are listed, not failures.

Exit status: 0 OK, 1 a broken chain or an unreadable file, 2 usage error.`,
		Example: `  ntptool audit --since 2026-11-01
  ntptool audit --json /var/log/ntptool/audit.jsonl | jq 'select(.kind == "step")'
  ntptool audit --verify
  ntptool audit --verify /archive/audit.jsonl*`,
		RunE: func(cmd *cobra.Command, args []string) error { return runAudit(cmd, f, args) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "read the journal's path from the [audit] section of this TOML config file")
	fl.StringVar(&f.since, "since", "", `print entries from this time on: RFC 3339 ("2026-11-25T10:00:00Z") or a UTC date ("2026-11-25")`)
	fl.BoolVar(&f.json, "json", false, "print the entries as JSON lines, as stored")
	fl.BoolVar(&f.verify, "verify", false, "verify the hash chain instead of printing")
	return cmd
}

func runAudit(cmd *cobra.Command, f auditFlags, files []string) error {
	var since time.Time
	if f.since != "" {
		var err error
		if since, err = parseSince(f.since); err != nil {
			return usageError("--since: %v (see '%s --help')", err, cmd.CommandPath())
		}
	}
	if len(files) == 0 {
		journal := config.Default().Audit.Journal
		if f.config != "" {
			c, err := config.Load(f.config)
			if err != nil {
				return &exitError{code: exitFailure, err: err}
			}
			journal = c.Audit.Journal
		}
		if journal == "" {
			return &exitError{code: exitFailure, err: errors.New("the audit journal is disabled (audit.journal = \"\"); give FILE")}
		}
		var err error
		if files, err = journalFiles(journal); err != nil {
			return &exitError{code: exitFailure, err: err}
		}
	}
	out := cmd.OutOrStdout()
	if f.verify {
		return verifyJournal(out, files)
	}
	return printJournal(out, files, since, f.json)
}

// parseSince reads --since.
func parseSince(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time or a date (2006-01-02)", s)
}

// journalFiles lists the journal and its rotated files.
func journalFiles(journal string) ([]string, error) {
	matches, err := filepath.Glob(globEscape(journal) + "*")
	if err != nil {
		return nil, err
	}
	var files []string
	for _, m := range matches {
		rest := strings.TrimPrefix(m, journal)
		if strings.HasPrefix(rest, ".head") {
			continue // the head file and its temporary files
		}
		files = append(files, m)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("audit journal %s: %w", journal, os.ErrNotExist)
	}
	return files, nil
}

// globEscape quotes glob metacharacters in a path.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func verifyJournal(out io.Writer, files []string) error {
	var opts audit.VerifyOptions
	headFile := ""
	for _, p := range files {
		h, err := audit.ReadHead(p + ".head")
		if err == nil {
			opts.Head, headFile = &h, p+".head"
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return &exitError{code: exitFailure, err: err}
		}
	}
	rep, err := audit.VerifyFiles(files, opts)
	if err != nil {
		return &exitError{code: exitFailure, err: err}
	}
	from := "from the journal's creation"
	if !rep.Genesis {
		from = "from a continuation header (earlier files not given)"
	}
	fmt.Fprintf(out, "OK: %d entries (seq %d..%d) in %d file(s), chain %s\n", rep.Entries, rep.FirstSeq, rep.LastSeq, len(rep.Files), from)
	if headFile != "" {
		fmt.Fprintf(out, "reaches the head recorded in %s (seq %d)\n", headFile, opts.Head.Seq)
	} else {
		fmt.Fprintln(out, "no head file: lines cut from the end cannot be detected")
	}
	for _, t := range rep.Torn {
		fmt.Fprintf(out, "%s: torn line (a crash during a write), recovered by the next header\n", t)
	}
	return nil
}

func printJournal(out io.Writer, files []string, since time.Time, asJSON bool) error {
	err := audit.Scan(files, func(r audit.Record) error {
		switch {
		case r.Err != nil:
			if !asJSON {
				fmt.Fprintf(out, "# %s: %v\n", r.Location, r.Err)
			}
		case r.Parsed.Header != nil:
			if !asJSON {
				h := r.Parsed.Header
				what := h.Reason
				if h.Prev != "" {
					what = fmt.Sprintf("%s, continues after seq %d", h.Reason, h.PrevSeq)
				}
				fmt.Fprintf(out, "# %s: journal header: %s\n", r.Location, what)
			}
		case r.Parsed.Entry.Time.Before(since):
		case asJSON:
			fmt.Fprintf(out, "%s\n", r.Raw)
		default:
			fmt.Fprintln(out, audit.Format(r.Parsed.Entry))
		}
		return nil
	})
	if err != nil {
		return &exitError{code: exitFailure, err: err}
	}
	return nil
}
