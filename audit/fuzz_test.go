package audit

import (
	"bytes"
	"compress/gzip"
	"os"
	"testing"
)

// gzipFile compresses path to path.gz and removes path, as logrotate's
// compress does.
func gzipFile(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".gz", b.Bytes(), 0o640); err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
}

// FuzzParseLine: any bytes give a line or an error, never a panic, and a
// line that parses has what Verify relies on.
func FuzzParseLine(f *testing.F) {
	f.Add([]byte(`{"journal":"ntptool-audit","version":1,"salt":"0707070707070707070707070707070707070707070707070707070707070707","reason":"created"}`))
	f.Add([]byte(`{"seq":1,"time":"2026-11-25T10:00:00Z","kind":"step","old":"a","new":"b","reason":"r","applied":true,"prev":"0707070707070707070707070707070707070707070707070707070707070707"}`))
	f.Add([]byte(`{"journal":"ntptool-audit","version":1,"prev_seq":4,"prev":"0707070707070707070707070707070707070707070707070707070707070707","reason":"rotated"}`))
	f.Add([]byte(`{"seq":"1"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		l, err := ParseLine(raw)
		if err != nil {
			return
		}
		switch {
		case l.Header != nil && l.Entry != nil, l.Header == nil && l.Entry == nil:
			t.Fatalf("want exactly one of header and entry: %+v", l)
		case l.Entry != nil && (l.Entry.Seq == 0 || !isHash(l.Entry.Prev) || !l.Entry.Kind.Valid()):
			t.Fatalf("bad entry accepted: %+v", l.Entry)
		case l.Header != nil && l.Header.Salt == "" && l.Header.Prev == "":
			t.Fatalf("header without salt or link accepted: %+v", l.Header)
		}
		if l.Entry != nil {
			Format(l.Entry)
		}
	})
}

// FuzzVerify: any journal content verifies or fails with an error, never
// panics.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(`{"journal":"ntptool-audit","version":1,"salt":"0707070707070707070707070707070707070707070707070707070707070707","reason":"created"}` + "\n"))
	f.Add([]byte("junk\n{\n"))
	f.Add([]byte{0x1f, 0x8b, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		Verify(bytes.NewReader(data), "fuzz", VerifyOptions{Head: &Head{Seq: 3, Hash: Hash(nil)}})
	})
}
