package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"time"
)

// maxReplyBytes bounds a reply (a thousand sources take about 400 KB).
const maxReplyBytes = 8 << 20

// QueryTimeout bounds one exchange with the daemon.
const QueryTimeout = 5 * time.Second

// ErrServer wraps an error the daemon answered with.
var ErrServer = errors.New("daemon")

// Query sends one command to the daemon's control socket at path and
// returns its reply. The exchange is bounded by ctx and by QueryTimeout,
// whichever ends first (a hung daemon must not hang wait-sync for its
// whole timeout). A reply carrying an error comes back as an error
// wrapping ErrServer.
func Query(ctx context.Context, path, command string) (*Reply, error) {
	ctx, cancel := context.WithTimeout(ctx, QueryTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("connect to the daemon's control socket %s: %w (is ntptool run running, and are you in the socket's group?)", path, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	req, _ := json.Marshal(Request{Command: command})
	// A server that answers before reading (busy) may have closed its end:
	// its reply is still there to read.
	_, werr := c.Write(append(req, '\n'))
	data, err := io.ReadAll(io.LimitReader(c, maxReplyBytes+1))
	if len(data) == 0 && werr != nil {
		return nil, fmt.Errorf("control socket %s: send: %w", path, werr)
	}
	if err != nil {
		return nil, fmt.Errorf("control socket %s: read: %w", path, err)
	}
	if len(data) > maxReplyBytes {
		return nil, fmt.Errorf("control socket %s: reply longer than %d bytes", path, maxReplyBytes)
	}
	var r Reply
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("control socket %s: bad reply: %w", path, err)
	}
	if r.Error != "" {
		return &r, fmt.Errorf("%w: %s", ErrServer, r.Error)
	}
	return &r, nil
}

// SyncCheck says whether a status is synchronised within maxOffset: the
// sync state is StateSynchronised (holdover does not count: at boot it
// means the sources went away) and |system time offset| ≤ maxOffset
// (maxOffset 0: any offset). The reason says what is missing.
func SyncCheck(st *Status, maxOffset time.Duration) (ok bool, reason string) {
	if st == nil {
		return false, "no status"
	}
	if st.SyncState != StateSynchronised {
		return false, "sync state " + st.SyncState
	}
	if off := math.Abs(st.SystemTimeOffsetSeconds); maxOffset > 0 && !(off <= maxOffset.Seconds()) {
		return false, fmt.Sprintf("offset %+.6f s beyond ±%v", st.SystemTimeOffsetSeconds, maxOffset)
	}
	return true, ""
}

// WaitSync asks query for the status now and at each tick until it is
// synchronised within maxOffset (SyncCheck) or ctx ends. A failing query
// (the daemon not started yet) is retried. It returns the last status
// seen; on ctx's end the error wraps ctx.Err() with why the last check
// failed.
func WaitSync(ctx context.Context, query func(context.Context) (*Status, error), maxOffset time.Duration, tick <-chan time.Time) (*Status, error) {
	var last *Status
	reason := "no answer yet"
	for {
		st, err := query(ctx)
		switch {
		case err != nil && ended(ctx):
			// Cut short by ctx: the previous answer says more.
			return last, fmt.Errorf("%w: %s", endErr(ctx), reason)
		case err != nil:
			reason = err.Error()
		default:
			last = st
			var ok bool
			if ok, reason = SyncCheck(st, maxOffset); ok {
				return st, nil
			}
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("%w: %s", ctx.Err(), reason)
		case <-tick:
		}
	}
}

// ended reports whether ctx is done or past its deadline: a dial or read
// bounded by the deadline fails with a timeout a moment before ctx's own
// timer marks it done.
func ended(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && time.Until(dl) <= 0
}

// endErr is ctx's error, DeadlineExceeded while its timer lags.
func endErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return context.DeadlineExceeded
}

// StatusQuery returns a query function for WaitSync over the socket at
// path.
func StatusQuery(path string) func(context.Context) (*Status, error) {
	return func(ctx context.Context) (*Status, error) {
		r, err := Query(ctx, path, CommandStatus)
		if err != nil {
			return nil, err
		}
		if r.Status == nil {
			return nil, errors.New("reply without a status")
		}
		return r.Status, nil
	}
}
