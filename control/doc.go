// Package control is the daemon's local control socket: a unix socket
// (mode 0660, group configurable) serving read-only commands for any
// member of its group, the client the status, sources and wait-sync
// commands use, and the text renderers of chronyc tracking and chronyc
// sources -v / ntpq -p style output.
//
// The daemon's loop publishes an immutable Snapshot after each change
// (Publisher, an atomic pointer); connections read it on their own
// goroutines, so a slow or hostile client never blocks the loop.
//
// Protocol: the client sends one JSON object on one line,
// {"command":"status"} (or "sources", "snapshot"), and the server answers
// one JSON object on one line: Reply, with "error" set on failure. A
// request is at most MaxRequestBytes and must arrive within the server's
// timeout; anything else (bad JSON, unknown keys or commands) is answered
// with an error, never a panic. The JSON keys are a contract for scripts,
// with their units in their names; docs/control.md lists them.
package control
