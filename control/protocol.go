package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Commands a client may send. All are read-only.
const (
	// CommandStatus returns Reply.Status.
	CommandStatus = "status"
	// CommandSources returns Reply.Sources.
	CommandSources = "sources"
	// CommandSnapshot returns both.
	CommandSnapshot = "snapshot"
)

// MaxRequestBytes bounds a request line (the longest valid one is a few
// dozen bytes).
const MaxRequestBytes = 1024

// Request is one client request: a JSON object on one line, such as
// {"command":"status"}.
type Request struct {
	// Command is CommandStatus, CommandSources or CommandSnapshot.
	Command string `json:"command"`
}

// Reply is the server's answer: one JSON object on one line. On error
// only Error is set.
type Reply struct {
	// Error says why the request failed; "" on success.
	Error string `json:"error,omitempty"`
	// Schema is SchemaVersion.
	Schema int `json:"schema,omitzero"`
	// Time is when the daemon made the snapshot the reply comes from.
	Time time.Time `json:"time,omitzero"`
	// Status is set for status and snapshot.
	Status *Status `json:"status,omitempty"`
	// Sources is set (possibly empty) for sources and snapshot.
	Sources []Source `json:"sources,omitzero"`
}

// Errors of the protocol.
var (
	// ErrBadRequest: the request is not a JSON object with a known
	// command and nothing else.
	ErrBadRequest = errors.New("bad request")
	// ErrNoSnapshot: the daemon has not published its state yet (it is
	// starting).
	ErrNoSnapshot = errors.New("the daemon has not published its state yet")
)

// ParseRequest parses one request line (the newline may be left on). It
// rejects anything but one JSON object with a known command and no other
// key, so that a typo is an error and never a silent default.
func ParseRequest(line []byte) (Request, error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return Request{}, fmt.Errorf("%w: empty request (want {\"command\":\"status\"})", ErrBadRequest)
	}
	if len(line) > MaxRequestBytes {
		return Request{}, fmt.Errorf("%w: longer than %d bytes", ErrBadRequest, MaxRequestBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var r Request
	if err := dec.Decode(&r); err != nil {
		return Request{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if dec.More() {
		return Request{}, fmt.Errorf("%w: more than one JSON value", ErrBadRequest)
	}
	switch r.Command {
	case CommandStatus, CommandSources, CommandSnapshot:
		return r, nil
	case "":
		return Request{}, fmt.Errorf("%w: no command (want status, sources or snapshot)", ErrBadRequest)
	}
	return Request{}, fmt.Errorf("%w: unknown command %q (want status, sources or snapshot)", ErrBadRequest, r.Command)
}

// Answer builds the reply to req from snapshot s (nil: none published).
// It only reads s.
func Answer(req Request, s *Snapshot) Reply {
	if s == nil {
		return Reply{Error: ErrNoSnapshot.Error()}
	}
	r := Reply{Schema: s.Schema, Time: s.Time}
	if req.Command == CommandStatus || req.Command == CommandSnapshot {
		st := s.Status
		r.Status = &st
	}
	if req.Command == CommandSources || req.Command == CommandSnapshot {
		r.Sources = s.Sources
		if r.Sources == nil {
			r.Sources = []Source{} // requested: "sources": [], never absent
		}
	}
	return r
}
