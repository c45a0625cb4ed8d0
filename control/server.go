package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Options configures a Server. The zero value is ready to use; every
// field states its default.
type Options struct {
	// Group is the group (name, or numeric id) that owns the socket, so
	// that its members may run the read-only commands. Default "": the
	// daemon's own group.
	Group string
	// Mode is the socket's permission bits. Default 0660 (owner and
	// group read and write; connecting needs write permission).
	Mode fs.FileMode
	// Timeout bounds each connection: the request must arrive and the
	// reply leave within it. Default 2 s.
	Timeout time.Duration
	// MaxClients bounds the connections served at once; more are told
	// the server is busy. Default 16.
	MaxClients int
	// Logger receives connection errors at debug level; nil discards.
	Logger *slog.Logger
}

// Errors of Listen.
var (
	// ErrInUse: another process answers on the socket path.
	ErrInUse = errors.New("control socket in use by another process")
	// ErrNotSocket: the path exists and is not a socket; it is left alone.
	ErrNotSocket = errors.New("exists and is not a socket")
)

// maxSunPath is the longest socket path (struct sockaddr_un's sun_path,
// less its terminating NUL).
const maxSunPath = 107

// Snapshots is where a Server reads the current snapshot: a *Publisher,
// or the daemon's loop, which builds one when asked. Load must be safe
// for concurrent use; it may wait briefly for the snapshot's owner, never
// for a client.
type Snapshots interface {
	Load() *Snapshot
}

// Server serves the control protocol on a unix socket from a Publisher's
// snapshots. It reads them only: a slow or hostile client never blocks
// the daemon's loop.
type Server struct {
	path string
	ino  uint64 // the socket file's inode, to remove only our own
	ln   *net.UnixListener
	pub  Snapshots
	opt  Options
	log  *slog.Logger
	sem  chan struct{}

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Listen creates the socket at path, for Serve: the parent directory is
// created (0755) if missing; a stale socket file (no process answers on
// it) is replaced; a live one is ErrInUse, and a path that is not a
// socket is ErrNotSocket. The socket is made under a temporary name,
// given its mode and group, and renamed into place, so that it is never
// reachable with looser permissions.
func Listen(path string, pub Snapshots, opt Options) (*Server, error) {
	if pub == nil {
		return nil, errors.New("control: no snapshot source")
	}
	if opt.Mode == 0 {
		opt.Mode = 0o660
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 2 * time.Second
	}
	if opt.MaxClients <= 0 {
		opt.MaxClients = 16
	}
	gid := -1
	if opt.Group != "" {
		g, err := lookupGroup(opt.Group)
		if err != nil {
			return nil, err
		}
		gid = g
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	if len(tmp) > maxSunPath {
		return nil, fmt.Errorf("control socket %s: path too long for a unix socket (at most %d bytes with a suffix)", path, maxSunPath-len(tmp)+len(path))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := checkStale(path); err != nil {
		return nil, err
	}
	_ = os.Remove(tmp) // left by a crash of a process with our pid
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	ln.SetUnlinkOnClose(false) // the file moves: Close removes it
	fail := func(err error) (*Server, error) {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(tmp, opt.Mode.Perm()); err != nil {
		return fail(err)
	}
	if gid >= 0 {
		if err := os.Chown(tmp, -1, gid); err != nil {
			return fail(fmt.Errorf("group %s: %w", opt.Group, err))
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	s := &Server{
		path: path, ln: ln, pub: pub, opt: opt, log: opt.Logger,
		sem: make(chan struct{}, opt.MaxClients), conns: map[net.Conn]struct{}{},
	}
	if fi, err := os.Lstat(path); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			s.ino = st.Ino
		}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// lookupGroup resolves a group name or numeric id.
func lookupGroup(name string) (int, error) {
	if id, err := strconv.Atoi(name); err == nil && id >= 0 {
		return id, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("control socket group: %w", err)
	}
	id, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0, fmt.Errorf("control socket group %s: gid %q", name, g.Gid)
	}
	return id, nil
}

// checkStale decides what to do with an existing file at path: nothing
// there, or a socket nobody answers on, may be replaced.
func checkStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("control socket %s: %w", path, ErrNotSocket)
	}
	c, err := net.DialTimeout("unix", path, 500*time.Millisecond)
	if err == nil {
		c.Close()
		return fmt.Errorf("control socket %s: %w (is another ntptool run running?)", path, ErrInUse)
	}
	return nil // ECONNREFUSED: stale, replaced by the rename
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Serve accepts connections until Close; it returns nil after Close.
func (s *Server) Serve() error {
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) {
				continue // transient: the next accept may work
			}
			return fmt.Errorf("control socket accept: %w", err)
		}
		if !s.track(c) {
			c.Close()
			return nil
		}
		go s.handle(c)
	}
}

// track registers a connection; false once the server is closed.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// handle answers one connection: one request line, one reply line.
func (s *Server) handle(c net.Conn) {
	defer s.untrack(c)
	defer c.Close()
	defer s.finish(c)
	if !s.readDeadline(c, s.opt.Timeout) {
		return
	}
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	default:
		s.reply(c, Reply{Error: "server busy: too many clients, try again"})
		return
	}
	line, err := readLine(c, MaxRequestBytes)
	if err != nil {
		s.log.Debug("control request", "err", err)
		s.reply(c, Reply{Error: err.Error()})
		return
	}
	req, err := ParseRequest(line)
	if err != nil {
		s.reply(c, Reply{Error: err.Error()})
		return
	}
	s.reply(c, Answer(req, s.pub.Load()))
}

// readLine reads up to a newline (or EOF) of at most max bytes.
func readLine(r io.Reader, max int) ([]byte, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, int64(max)+1), 256)
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		switch {
		case len(line) > max:
			return nil, fmt.Errorf("%w: longer than %d bytes", ErrBadRequest, max)
		case err == nil, errors.Is(err, io.EOF):
			return line, nil // empty at EOF: ParseRequest says so
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return nil, fmt.Errorf("%w: reading the request: %v", ErrBadRequest, err)
		}
	}
}

// finish ends the reply (EOF for the client) and reads what the client
// sent beyond its request: closing a unix socket with unread data resets
// the connection, and the client would lose the reply it has not read yet.
func (s *Server) finish(c net.Conn) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return
	}
	_ = uc.CloseWrite()
	if s.readDeadline(uc, drainTimeout) {
		_, _ = io.Copy(io.Discard, io.LimitReader(uc, drainBytes))
	}
}

// readDeadline gives c a read deadline d from now unless the server is
// closed (false). Under the lock Close holds while it expires every
// connection's deadline: a handler that set its own after Close would
// otherwise wait out the whole timeout, and Close with it.
func (s *Server) readDeadline(c net.Conn, d time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	_ = c.SetReadDeadline(time.Now().Add(d))
	return true
}

// How long and how much finish drains.
const (
	drainTimeout = 500 * time.Millisecond
	drainBytes   = 64 << 10
)

func (s *Server) reply(c net.Conn, r Reply) {
	// A fresh deadline: a client that timed out reading still hears why
	// (unless Close is ending every connection now).
	if s.isClosed() {
		return
	}
	_ = c.SetWriteDeadline(time.Now().Add(s.opt.Timeout))
	b, err := json.Marshal(r)
	if err != nil { // cannot happen: plain structs and finite floats
		b, _ = json.Marshal(Reply{Error: "internal error: " + err.Error()})
	}
	if _, err := c.Write(append(b, '\n')); err != nil {
		s.log.Debug("control reply", "err", err)
	}
}

// Close stops accepting, ends the connections in progress, waits for
// their goroutines and removes the socket file if it is still ours.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	err := s.ln.Close()
	for c := range s.conns {
		_ = c.SetDeadline(time.Unix(1, 0)) // the handler returns at once
	}
	s.mu.Unlock()
	s.wg.Wait()
	if fi, lerr := os.Lstat(s.path); lerr == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Ino == s.ino {
			os.Remove(s.path)
		}
	}
	return err
}
