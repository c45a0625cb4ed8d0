package audit

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Location is a line in a journal file, counting from 1.
type Location struct {
	File string
	Line int
}

func (l Location) String() string { return fmt.Sprintf("%s:%d", l.File, l.Line) }

// ChainError is the first broken link Verify finds: the line it names is
// the one that was changed, is missing before, or is torn.
type ChainError struct {
	Location
	Msg string
}

func (e *ChainError) Error() string { return e.Location.String() + ": " + e.Msg }

// Record is one line as Scan reads it.
type Record struct {
	Location
	// Raw is the line without its "\n"; valid only during the callback.
	Raw []byte
	// Parsed is the parsed line; zero when Err is set.
	Parsed Line
	// Err is why the line did not parse (ErrTorn for a last line without
	// "\n").
	Err error
}

// ErrTorn marks a last line without its "\n": truncated, or cut by a crash.
var ErrTorn = errors.New("torn line (no newline at the end of the file)")

// Scan calls fn for every line of the files at paths, in chain order (see
// OrderFiles). Gzip-compressed files (logrotate's compress) are read
// transparently. It stops at fn's first error and returns it.
func Scan(paths []string, fn func(Record) error) error {
	ordered, err := OrderFiles(paths)
	if err != nil {
		return err
	}
	for _, p := range ordered {
		if err := scanFile(p, fn); err != nil {
			return err
		}
	}
	return nil
}

// scanFile calls fn for each line of one file.
func scanFile(path string, fn func(Record) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audit journal: %w", err)
	}
	defer f.Close()
	r, err := decompress(f)
	if err != nil {
		return fmt.Errorf("audit journal %s: %w", path, err)
	}
	return scanReader(r, path, fn)
}

// decompress returns a reader of f's content, gunzipped if it is gzip.
func decompress(f io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(f, 64<<10)
	magic, err := br.Peek(2)
	if err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		return gzip.NewReader(br)
	}
	return br, nil
}

// scanReader calls fn for each line read from r, named name.
func scanReader(r io.Reader, name string, fn func(Record) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	for n := 1; ; n++ {
		buf = buf[:0]
		terminated := false
		var err error
		for {
			var chunk []byte
			chunk, err = br.ReadSlice('\n')
			buf = append(buf, chunk...)
			if len(buf) > MaxLineBytes+1 {
				return &ChainError{Location{name, n}, ErrTooLong.Error()}
			}
			if err != bufio.ErrBufferFull {
				break
			}
		}
		if len(buf) > 0 && buf[len(buf)-1] == '\n' {
			buf, terminated = buf[:len(buf)-1], true
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("read %s: %w", name, err)
		}
		if !terminated && len(buf) == 0 {
			return nil // end of file
		}
		rec := Record{Location: Location{name, n}, Raw: buf}
		if !terminated {
			rec.Err = ErrTorn
		} else {
			rec.Parsed, rec.Err = ParseLine(buf)
		}
		if ferr := fn(rec); ferr != nil {
			return ferr
		}
		if !terminated {
			return nil
		}
	}
}

// OrderFiles sorts journal files into chain order: by the sequence number
// their first header continues from, the journal's first file (the one
// with the salt) first. Equal ones keep the order given. So the files of
// a rotated journal can be given in any order ("audit.jsonl*"). Empty
// files (just rotated, not yet written) are left out.
func OrderFiles(paths []string) ([]string, error) {
	type keyed struct {
		path    string
		prevSeq uint64
		genesis bool
	}
	ks := make([]keyed, 0, len(paths))
	for _, p := range paths {
		var first Record
		err := scanFile(p, func(r Record) error {
			first = r
			first.Raw = nil
			return io.EOF // stop after the first line
		})
		if err != nil && err != io.EOF {
			return nil, err
		}
		switch {
		case first.Location.Line == 0:
			// Empty: a journal just rotated (logrotate's create) and not
			// written yet. It holds nothing to verify.
			continue
		case first.Err != nil || first.Parsed.Header == nil:
			return nil, &ChainError{first.Location, "the file does not start with a journal header"}
		}
		h := first.Parsed.Header
		ks = append(ks, keyed{p, h.PrevSeq, h.Prev == ""})
	}
	slices.SortStableFunc(ks, func(a, b keyed) int {
		switch {
		case a.prevSeq != b.prevSeq:
			if a.prevSeq < b.prevSeq {
				return -1
			}
			return 1
		case a.genesis != b.genesis:
			if a.genesis {
				return -1
			}
			return 1
		}
		return 0
	})
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = k.path
	}
	return out, nil
}

// VerifyOptions are the options of Verify and VerifyFiles.
type VerifyOptions struct {
	// Head, if set, is the chain's end as recorded elsewhere (the head
	// file, or a copy logged off the host): a journal that ends before it,
	// or differs from it, fails.
	Head *Head
}

// Report is what a successful verification found.
type Report struct {
	// Files are the files verified, in chain order.
	Files []string
	// Entries and Headers count the lines.
	Entries, Headers int
	// FirstSeq and LastSeq are the sequence numbers of the first and last
	// entries (0 if there are none).
	FirstSeq, LastSeq uint64
	// Genesis says that the chain starts at the journal's first header
	// (with the salt). When not, earlier files were not given, and the
	// chain is checked from the first header on.
	Genesis bool
	// Torn lists torn lines that a later header acknowledges (the writer
	// crashed during a write and continued after it): not tampering.
	Torn []Location
	// Anchored says the chain ends at (or runs through) VerifyOptions.Head.
	Anchored bool
}

// Verify checks one journal read from r (named name in errors). It returns
// a *ChainError naming the first broken line.
func Verify(r io.Reader, name string, opts VerifyOptions) (Report, error) {
	v := &verifier{opts: opts}
	v.rep.Files = []string{name}
	dr, err := decompress(r)
	if err != nil {
		return v.rep, fmt.Errorf("audit journal %s: %w", name, err)
	}
	if err := scanReader(dr, name, v.feed); err != nil {
		return v.rep, err
	}
	return v.rep, v.finish(name)
}

// VerifyFiles checks the journal made of the files at paths (a journal and
// its rotated predecessors, in any order; see OrderFiles), following the
// chain across them. It returns a *ChainError naming the first broken line.
func VerifyFiles(paths []string, opts VerifyOptions) (Report, error) {
	v := &verifier{opts: opts}
	ordered, err := OrderFiles(paths)
	if err != nil {
		return v.rep, err
	}
	if len(ordered) == 0 {
		return v.rep, fmt.Errorf("audit journal %s: no journal lines", strings.Join(paths, ", "))
	}
	v.rep.Files = ordered
	for _, p := range ordered {
		if err := scanFile(p, v.feed); err != nil {
			return v.rep, err
		}
	}
	name := ""
	if len(ordered) > 0 {
		name = ordered[len(ordered)-1]
	}
	return v.rep, v.finish(name)
}

// verifier follows the chain line by line.
type verifier struct {
	opts     VerifyOptions
	rep      Report
	started  bool
	head     Head     // the chain's end after the last good line
	prevHead Head     // the chain's end before it
	lastWasE bool     // the last good line was an entry
	lastHash string   // hash of the last good line
	last     Location // the last good line
	pending  *Record  // a bad line, waiting for a header that acknowledges it
	pendHash string
}

func (v *verifier) fail(loc Location, format string, args ...any) error {
	return &ChainError{loc, fmt.Sprintf(format, args...)}
}

// badLine is the error for a line that did not parse and was not
// acknowledged as torn.
func (v *verifier) badLine() error {
	p := v.pending
	if errors.Is(p.Err, ErrTorn) {
		return v.fail(p.Location, "torn last line: the file was truncated inside this line, or the writer crashed during a write")
	}
	return v.fail(p.Location, "not a journal line (changed after it was written?): %v", p.Err)
}

func (v *verifier) feed(r Record) error {
	h := Hash(r.Raw)
	if r.Err != nil {
		if v.pending != nil {
			return v.badLine()
		}
		pr := r
		pr.Raw = nil
		v.pending, v.pendHash = &pr, h
		return nil
	}
	if hd := r.Parsed.Header; hd != nil {
		return v.header(r.Location, hd, h)
	}
	return v.entry(r.Location, r.Parsed.Entry, h)
}

func (v *verifier) header(loc Location, hd *Header, h string) error {
	if hd.Torn != "" {
		switch {
		case v.pending != nil && hd.Torn == v.pendHash:
			v.rep.Torn = append(v.rep.Torn, v.pending.Location)
			v.pending = nil
		case v.pending == nil && v.started && hd.Torn == v.lastHash:
			// A whole line written without its newline, then ended by
			// the writer's recovery: it is disowned, like a torn one.
			v.rep.Torn = append(v.rep.Torn, v.last)
			if v.lastWasE {
				v.rep.Entries--
			} else {
				v.rep.Headers--
			}
			v.head = v.prevHead
		default:
			return v.fail(loc, "header acknowledges a torn line that is not the line before it")
		}
	}
	if v.pending != nil {
		return v.badLine()
	}
	switch {
	case !v.started:
		v.started = true
		v.rep.Genesis = hd.Prev == ""
	case hd.Prev == "":
		return v.fail(loc, "a new journal (with its own salt) starts here, after %s: the file was replaced or joined to another", v.last)
	case hd.PrevSeq > v.head.Seq:
		return v.fail(loc, "continues from seq %d, but the chain before it ends at seq %d (%s): %d entries were removed (truncated)",
			hd.PrevSeq, v.head.Seq, v.last, hd.PrevSeq-v.head.Seq)
	case hd.PrevSeq < v.head.Seq:
		return v.fail(loc, "continues from seq %d, but the line before it has seq %d (%s): lines were moved or copied", hd.PrevSeq, v.head.Seq, v.last)
	case hd.Prev != v.head.Hash:
		return v.fail(v.last, "changed after it was written: its hash does not match the \"prev\" of the next line (%s)", loc)
	}
	v.rep.Headers++
	v.advance(loc, Head{Seq: hd.PrevSeq, Hash: h}, false)
	return nil
}

func (v *verifier) entry(loc Location, e *Entry, h string) error {
	if v.pending != nil {
		return v.badLine()
	}
	switch {
	case !v.started:
		return v.fail(loc, "the journal does not start with a header")
	case e.Seq > v.head.Seq+1:
		return v.fail(loc, "%d entries missing before this one (seq %d..%d): deleted", e.Seq-v.head.Seq-1, v.head.Seq+1, e.Seq-1)
	case e.Seq <= v.head.Seq:
		return v.fail(loc, "seq %d repeats or goes back (the line before, %s, has seq %d): a line was copied or moved", e.Seq, v.last, v.head.Seq)
	case e.Prev != v.head.Hash:
		return v.fail(v.last, "changed after it was written: its hash does not match the \"prev\" of the next line (%s)", loc)
	}
	if v.rep.FirstSeq == 0 {
		v.rep.FirstSeq = e.Seq
	}
	v.rep.LastSeq = e.Seq
	v.rep.Entries++
	v.advance(loc, Head{Seq: e.Seq, Hash: h}, true)
	return nil
}

// advance makes a good line the chain's end.
func (v *verifier) advance(loc Location, head Head, entry bool) {
	v.prevHead, v.head = v.head, head
	v.lastHash, v.last, v.lastWasE = head.Hash, loc, entry
	if a := v.opts.Head; a != nil && *a == head {
		v.rep.Anchored = true
	}
}

func (v *verifier) finish(name string) error {
	if v.pending != nil {
		return v.badLine()
	}
	if !v.started {
		return v.fail(Location{name, 1}, "no journal lines")
	}
	if a := v.opts.Head; a != nil && !v.rep.Anchored {
		if v.head.Seq < a.Seq {
			return v.fail(v.last, "the journal ends here at seq %d, but its head records seq %d: the last %d entries were removed (truncated)",
				v.head.Seq, a.Seq, a.Seq-v.head.Seq)
		}
		return v.fail(v.last, "no line matches the recorded head (seq %d, hash %s): a line at or after seq %d was changed, or lines after it removed",
			a.Seq, a.Hash[:12], a.Seq)
	}
	return nil
}
