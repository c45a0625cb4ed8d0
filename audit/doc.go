// Package audit keeps the audit journal: one JSON line per change of the
// clock (step, slew, frequency, status, leap, a change made by another
// process), appended and fsynced, for auditors (PCI-DSS requirement 10.6
// asks that changes to time settings be logged; see docs/audit.md).
//
// The journal is tamper-evident. Its first line is a header holding a
// random salt; every later line carries, in "prev", the SHA-256 (hex) of
// the raw bytes of the line before it, and every entry a sequence number
// one above the previous entry's. Editing a line breaks the link from the
// next one, deleting a line leaves a gap in the sequence, and a torn last
// line (truncation inside a line, or a crash during a write) is reported as
// such. Truncation at a line boundary is caught against the head file
// (<journal>.head, rewritten atomically after each append with the last
// sequence number and hash): Verify reports a journal that ends before the
// head. A hash chain cannot stop someone who may rewrite every file from
// the edit on; that is why the head should also be copied off the host
// (the daemon logs it with each entry, and syslog ships it).
//
// The journal survives log rotation: before each append it checks that the
// path still names the file it has open (same device and inode) and that
// the file has the size it wrote; if not (renamed by logrotate, removed,
// truncated by copytruncate), it opens the path anew and writes a
// continuation header whose "prev" links to the last line of the old
// file, so the chain runs on across files. Reopen does the same on request
// (SIGHUP).
//
// Line formats (one JSON object per line, "\n"-terminated):
//
//	{"journal":"ntptool-audit","version":1,"created":"…","salt":"<64 hex>","reason":"created"}
//	{"seq":1,"time":"…","kind":"step","old":…,"new":…,"unit":"s","reason":"…","sources":[…],"hooks":[…],"applied":true,"prev":"<64 hex>"}
//	{"journal":"ntptool-audit","version":1,"prev_seq":41,"prev":"<64 hex>","reason":"rotated"}
package audit
