package audit

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Options configure a Journal. The zero value is usable.
type Options struct {
	// HeadFile is where the head (last sequence number and hash) is kept,
	// rewritten atomically after each append. Default: the journal's path
	// with ".head" appended; "-" keeps no head file.
	HeadFile string
	// Now gives the Created time of headers; nil leaves it out. (Entries
	// carry the time their caller gives.)
	Now func() time.Time
	// Rand is the source of the salt. Default crypto/rand.
	Rand io.Reader
	// Perm is the mode of a new journal file. Default 0o640.
	Perm fs.FileMode
}

// Head is the end of the chain: the sequence number of the last entry and
// the hash of the last line (an entry, or a header after it).
type Head struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// ErrClosed is returned by Append and Reopen after Close.
var ErrClosed = errors.New("audit journal closed")

// Journal appends entries to a journal file. Its methods may be called from
// several goroutines (a mutex orders them): the daemon's loop appends,
// and a SIGHUP handler may call Reopen.
type Journal struct {
	mu       sync.Mutex
	path     string
	headPath string // "" for none
	opts     Options
	f        *os.File
	fi       fs.FileInfo // f's identity when opened
	size     int64       // bytes f holds, as far as this Journal knows
	head     Head        // the chain's end, valid once attached
	broken   bool        // a write failed: reattach before the next append
	closed   bool
}

// Open opens the journal at path, creating it (with its first header and
// salt) if it does not exist, or continuing the chain of the file that is
// there. A file that ends with a torn line (a crash during a write) is
// continued after it with a header that records the torn line's hash. If
// the file is missing or empty but the head file has a head (the journal
// was rotated while the daemon was stopped), the new file's header links
// to that head.
func Open(path string, opts Options) (*Journal, error) {
	j := &Journal{path: path, opts: opts, headPath: opts.HeadFile}
	switch j.headPath {
	case "":
		j.headPath = path + ".head"
	case "-":
		j.headPath = ""
	}
	if j.opts.Rand == nil {
		j.opts.Rand = rand.Reader
	}
	if j.opts.Perm == 0 {
		j.opts.Perm = 0o640
	}
	var stored *Head
	if j.headPath != "" {
		h, err := ReadHead(j.headPath)
		switch {
		case err == nil:
			stored = &h
		case !errors.Is(err, fs.ErrNotExist):
			return nil, err
		}
	}
	if err := j.open(); err != nil {
		return nil, err
	}
	if err := j.attach(stored, false, "created"); err != nil {
		j.f.Close()
		return nil, err
	}
	return j, nil
}

// Path is the journal's file path.
func (j *Journal) Path() string { return j.path }

// Head returns the end of the chain, for the daemon to log beside each
// entry (a copy of it off the host is what makes truncation evident).
func (j *Journal) Head() Head {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.head
}

// Append writes e as the next line and fsyncs it, then the head file. It
// sets e's Seq and Prev; e.Time must be set and e.Kind valid. Before
// writing it makes sure the path still names the open file with the size
// this Journal wrote, and continues the chain in a new file if not (log
// rotation). On an error the entry may or may not be in the file; the next
// Append reopens the file and continues after whatever is there.
func (j *Journal) Append(e Entry) error {
	if e.Time.IsZero() {
		return errors.New("audit entry without a time")
	}
	if !e.Kind.Valid() {
		return fmt.Errorf("audit entry of unknown kind %q", e.Kind)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrClosed
	}
	if err := j.check(); err != nil {
		return err
	}
	e.Seq = j.head.Seq + 1
	e.Prev = j.head.Hash
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit entry: %w", err)
	}
	if err := j.writeLine(nil, line); err != nil {
		return err
	}
	j.head = Head{Seq: e.Seq, Hash: Hash(line)}
	return j.writeHead()
}

// Reopen closes the file and opens the path again, continuing the chain
// (with a header) if the path now names another file. Call it on SIGHUP
// after log rotation; Append also notices rotation by itself.
func (j *Journal) Reopen() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrClosed
	}
	return j.reattach("reopened")
}

// Chown gives the open journal file to uid and gid (fchown: the file this
// Journal holds, never what the path may name by now). A daemon that
// opens its journal as root and then switches user calls it, so that the
// user can reopen the file after a SIGHUP.
func (j *Journal) Chown(uid, gid int) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed || j.f == nil {
		return ErrClosed
	}
	if err := j.f.Chown(uid, gid); err != nil {
		return fmt.Errorf("audit journal %s: %w", j.path, err)
	}
	return nil
}

// Close closes the journal file.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrClosed
	}
	j.closed = true
	if j.f == nil {
		return nil
	}
	if err := j.f.Close(); err != nil {
		return fmt.Errorf("close audit journal %s: %w", j.path, err)
	}
	return nil
}

// check reattaches if the journal file was rotated, removed, truncated or
// written by someone else since the last append, or a write failed.
func (j *Journal) check() error {
	if j.f == nil || j.broken {
		return j.reattach("reopened after a write error")
	}
	fi, err := os.Stat(j.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return j.reattach("rotated")
	case err != nil:
		return fmt.Errorf("audit journal: %w", err)
	case !os.SameFile(fi, j.fi):
		return j.reattach("rotated")
	}
	cur, err := j.f.Stat()
	if err != nil {
		return fmt.Errorf("audit journal: %w", err)
	}
	if cur.Size() != j.size {
		return j.reattach(fmt.Sprintf("file changed size under the journal (%d bytes, %d written)", cur.Size(), j.size))
	}
	return nil
}

// reattach closes the file, opens the path and continues the chain.
func (j *Journal) reattach(reason string) error {
	if j.f != nil {
		j.f.Close() // written data was fsynced; a close error changes nothing
		j.f = nil
	}
	if err := j.open(); err != nil {
		j.broken = true
		return err
	}
	j.broken = false
	head := j.head
	if err := j.attach(&head, true, reason); err != nil {
		j.broken = true
		return err
	}
	return nil
}

// open opens (or creates) the file at the path for appending.
func (j *Journal) open() error {
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, j.opts.Perm)
	if err != nil {
		return fmt.Errorf("open audit journal: %w", err)
	}
	// One writer per file: a second daemon on the same journal would
	// interleave two chains.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("audit journal %s is in use by another process: %w", j.path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("audit journal: %w", err)
	}
	j.f, j.fi, j.size = f, fi, fi.Size()
	return nil
}

// attach sets the chain's end from the open file and writes the header the
// file needs, if any. known is the chain's end this process (live) or the
// head file (!live) remembers, or nil.
func (j *Journal) attach(known *Head, live bool, reason string) error {
	if j.size == 0 {
		if known == nil {
			return j.genesis()
		}
		j.head = *known
		return j.header(Header{PrevSeq: known.Seq, Prev: known.Hash, Reason: reason}, false)
	}
	t, err := readTail(j.path, j.size)
	if err != nil {
		return err
	}
	switch {
	case live && t.head.Hash != known.Hash:
		// Not the file this process wrote last (a new file with content,
		// or lines appended by someone else): link to what we wrote, and
		// let Verify find what is in between.
		j.head = *known
		return j.header(Header{PrevSeq: known.Seq, Prev: known.Hash, Torn: t.tornHash, Reason: reason + ": the file ends with a line this journal did not write"}, t.unterminated)
	case !live && known != nil && known.Seq > t.head.Seq:
		// The head file is ahead of the file: lines were removed while
		// nobody was writing. Link to the head, so that Verify reports the
		// gap here for as long as the file is kept.
		j.head = *known
		return j.header(Header{PrevSeq: known.Seq, Prev: known.Hash, Torn: t.tornHash,
			Reason: fmt.Sprintf("the head file records seq %d but the file ends at seq %d", known.Seq, t.head.Seq)}, t.unterminated)
	}
	j.head = t.head
	if t.tornHash != "" {
		return j.header(Header{PrevSeq: t.head.Seq, Prev: t.head.Hash, Torn: t.tornHash, Reason: "continued after a torn line"}, t.unterminated)
	}
	return nil
}

// genesis writes the first header of a new journal, with a fresh salt.
func (j *Journal) genesis() error {
	salt := make([]byte, 32)
	if _, err := io.ReadFull(j.opts.Rand, salt); err != nil {
		return fmt.Errorf("audit journal salt: %w", err)
	}
	return j.header(Header{Salt: hex.EncodeToString(salt), Reason: "created"}, false)
}

// header writes a header line (after a "\n" that ends a torn line, if
// terminate) and makes it the chain's end.
func (j *Journal) header(h Header, terminate bool) error {
	h.Journal, h.Version = journalName, version
	if j.opts.Now != nil {
		h.Created = j.opts.Now().UTC()
	}
	line, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("audit header: %w", err)
	}
	var pre []byte
	if terminate {
		pre = []byte("\n")
	}
	if err := j.writeLine(pre, line); err != nil {
		return err
	}
	j.head.Hash = Hash(line)
	return j.writeHead()
}

// writeLine appends pre, line and "\n" in one write, and fsyncs.
func (j *Journal) writeLine(pre, line []byte) error {
	buf := make([]byte, 0, len(pre)+len(line)+1)
	buf = append(append(append(buf, pre...), line...), '\n')
	n, err := j.f.Write(buf)
	j.size += int64(n)
	if err == nil {
		err = j.f.Sync()
	}
	if err != nil {
		j.broken = true
		return fmt.Errorf("write audit journal %s: %w", j.path, err)
	}
	return nil
}

// writeHead replaces the head file atomically (temporary file, fsync,
// rename).
func (j *Journal) writeHead() error {
	if j.headPath == "" {
		return nil
	}
	data, err := json.Marshal(j.head)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(j.headPath), filepath.Base(j.headPath)+".tmp*")
	if err != nil {
		return fmt.Errorf("audit head file: %w", err)
	}
	_, err = tmp.Write(append(data, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), j.headPath)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("audit head file %s: %w", j.headPath, err)
	}
	return nil
}

// ReadHead reads a head file. A missing file gives an error matching
// fs.ErrNotExist.
func ReadHead(path string) (Head, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Head{}, fmt.Errorf("audit head file: %w", err)
	}
	var h Head
	if err := json.Unmarshal(data, &h); err != nil || !isHash(h.Hash) {
		return Head{}, fmt.Errorf("audit head file %s: not a head (want {\"seq\":N,\"hash\":\"<64 hex>\"})", path)
	}
	return h, nil
}

// tail is what the end of a journal file says.
type tail struct {
	head         Head   // after the last good line
	tornHash     string // hash of a torn last line, if any
	unterminated bool   // the torn line has no "\n"
}

// readTail reads the end of the file at path (size bytes long): the last
// line that parses, and a torn line after it if there is one. More than one
// bad line at the end is an error: that is not a crash, and the journal
// will not guess.
func readTail(path string, size int64) (tail, error) {
	f, err := os.Open(path)
	if err != nil {
		return tail{}, fmt.Errorf("read audit journal: %w", err)
	}
	defer f.Close()
	start := max(0, size-2*MaxLineBytes-2)
	buf := make([]byte, size-start)
	if _, err := f.ReadAt(buf, start); err != nil {
		return tail{}, fmt.Errorf("read audit journal %s: %w", path, err)
	}
	if start > 0 {
		// Drop the partial line the window starts in.
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		}
	}
	var t tail
	lines := bytes.Split(buf, []byte("\n"))
	last := len(lines) - 1
	if len(lines[last]) > 0 {
		t.unterminated = true
	} else {
		lines = lines[:last]
		last--
	}
	if last < 0 {
		return tail{}, fmt.Errorf("audit journal %s: no complete line at its end", path)
	}
	l, err := ParseLine(lines[last])
	if err != nil || t.unterminated {
		t.tornHash = Hash(lines[last])
		last--
		if last < 0 {
			return tail{}, fmt.Errorf("audit journal %s: cannot continue: its only line is not a journal line: move it away", path)
		}
		if l, err = ParseLine(lines[last]); err != nil {
			return tail{}, fmt.Errorf("audit journal %s: cannot continue: its last two lines are not journal lines (%v): move it away", path, err)
		}
	}
	t.head.Hash = Hash(lines[last])
	if l.Entry != nil {
		t.head.Seq = l.Entry.Seq
	} else {
		t.head.Seq = l.Header.PrevSeq
	}
	return t, nil
}
