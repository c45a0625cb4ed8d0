package config

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// keyPos is where a key is defined in a TOML document.
type keyPos struct {
	key  toml.Key // as MetaData.Keys reports it: no array indexes
	path string   // with array indexes: "source[1].port"
	line int
}

// scanKeys lists the keys of a TOML document, in the order
// toml.MetaData.Keys reports them, with their array indexes and the line
// each is defined on. BurntSushi/toml records key positions but does not
// export them (v1.6), so this is a lexer that knows just enough TOML to step
// over values. It expects a document the toml package accepted; on anything
// else it returns garbage, never panics, and the caller notices that the
// keys differ from MetaData.Keys.
func scanKeys(text string) []keyPos {
	s := &keyScanner{text: text, arrays: map[string]int{}, lineStarts: []int{0}}
	for i := range len(text) {
		if text[i] == '\n' {
			s.lineStarts = append(s.lineStarts, i+1)
		}
	}
	s.document()
	return s.out
}

// keyScanner is the state of scanKeys.
type keyScanner struct {
	text       string
	pos        int
	lineStarts []int          // byte offset where each line starts
	arrays     map[string]int // array-of-tables path → elements seen
	out        []keyPos
}

// document scans top-level statements: table headers and key/value pairs.
func (s *keyScanner) document() {
	var table toml.Key
	tablePath := ""
	for s.skipBlank(true); s.pos < len(s.text); s.skipBlank(true) {
		start := s.pos
		switch {
		case strings.HasPrefix(s.text[s.pos:], "[["):
			s.pos += 2
			table = s.key()
			tablePath = s.headerPath(table, true)
			s.emit(table, tablePath, start)
		case s.text[s.pos] == '[':
			s.pos++
			table = s.key()
			tablePath = s.headerPath(table, false)
			s.emit(table, tablePath, start)
		default:
			s.keyValue(table, tablePath)
		}
		s.skipLine() // the closing brackets, a comment
	}
}

// headerPath resolves a table header to its path: every array of tables on
// the way refers to its latest element, and [[header]] adds one.
func (s *keyScanner) headerPath(key toml.Key, array bool) string {
	path := ""
	for i, k := range key {
		path = joinPath(path, k)
		if array && i == len(key)-1 {
			n := s.arrays[path]
			s.arrays[path] = n + 1
			return fmt.Sprintf("%s[%d]", path, n)
		}
		if n, ok := s.arrays[path]; ok {
			path = fmt.Sprintf("%s[%d]", path, n-1)
		}
	}
	return path
}

// keyValue scans "key = value" inside the table table (at tablePath) or
// inside an inline table.
func (s *keyScanner) keyValue(table toml.Key, tablePath string) {
	start := s.pos
	key := s.key()
	full := append(slices.Clip(table), key...)
	path := tablePath
	for _, k := range key {
		path = joinPath(path, k)
	}
	s.emit(full, path, start)
	s.skipBlank(false)
	if s.peek() == '=' {
		s.pos++
	}
	s.skipBlank(false)
	s.value(full, path)
}

// value steps over a value, emitting the keys of inline tables in it.
func (s *keyScanner) value(key toml.Key, path string) {
	if s.pos >= len(s.text) {
		return
	}
	rest := s.text[s.pos:]
	switch {
	case strings.HasPrefix(rest, `"""`):
		s.skipString(`"""`, true)
	case strings.HasPrefix(rest, `'''`):
		s.skipString(`'''`, false)
	case strings.HasPrefix(rest, `"`):
		s.skipString(`"`, true)
	case strings.HasPrefix(rest, `'`):
		s.skipString(`'`, false)
	case strings.HasPrefix(rest, "["):
		s.pos++
		for i := 0; s.pos < len(s.text); i++ {
			s.skipBlank(true)
			if s.peek() == ']' {
				s.pos++
				return
			}
			s.progress(func() { s.value(key, fmt.Sprintf("%s[%d]", path, i)) })
			s.skipBlank(true)
			if s.peek() == ',' {
				s.pos++
			}
		}
	case strings.HasPrefix(rest, "{"):
		s.pos++
		for s.pos < len(s.text) {
			s.skipBlank(true)
			if s.peek() == '}' {
				s.pos++
				return
			}
			s.progress(func() { s.keyValue(key, path) })
			s.skipBlank(true)
			if s.peek() == ',' {
				s.pos++
			}
		}
	default:
		s.scalar()
	}
}

// progress runs f and makes sure it consumed something, so that a loop
// over malformed input ends.
func (s *keyScanner) progress(f func()) {
	start := s.pos
	f()
	if s.pos == start {
		s.pos++
	}
}

// scalar steps over a number, boolean or date-time.
func (s *keyScanner) scalar() {
	start := s.pos
	for s.pos < len(s.text) && !strings.ContainsRune(" \t\r\n,]}#", rune(s.text[s.pos])) {
		s.pos++
	}
	// A date-time may separate the date and the time with a space.
	if s.pos-start == len("2006-01-02") && s.text[start+4] == '-' &&
		s.pos+1 < len(s.text) && s.text[s.pos] == ' ' && isDigit(s.text[s.pos+1]) {
		s.pos++
		s.scalar()
	}
}

// skipString steps over a string that starts at s.pos with delim.
func (s *keyScanner) skipString(delim string, escapes bool) {
	s.pos += len(delim)
	for s.pos < len(s.text) {
		switch {
		case escapes && s.text[s.pos] == '\\':
			s.pos += 2
		case strings.HasPrefix(s.text[s.pos:], delim):
			s.pos += len(delim)
			// A multi-line string may end with up to two more quotes.
			for n := 0; len(delim) == 3 && n < 2 && s.peek() == delim[0]; n++ {
				s.pos++
			}
			return
		case len(delim) == 1 && s.text[s.pos] == '\n':
			return
		default:
			s.pos++
		}
	}
}

// key scans a dotted key: bare, "basic" or 'literal' parts joined by dots.
func (s *keyScanner) key() toml.Key {
	var key toml.Key
	for {
		s.skipBlank(false)
		start := s.pos
		switch s.peek() {
		case '"':
			s.skipString(`"`, true)
			raw := s.text[start:min(s.pos, len(s.text))]
			part, err := strconv.Unquote(raw)
			if err != nil {
				part = raw
			}
			key = append(key, part)
		case '\'':
			s.skipString(`'`, false)
			key = append(key, strings.Trim(s.text[start:min(s.pos, len(s.text))], "'"))
		default:
			for s.pos < len(s.text) && isBareKeyChar(s.text[s.pos]) {
				s.pos++
			}
			if s.pos == start {
				return key
			}
			key = append(key, s.text[start:s.pos])
		}
		s.skipBlank(false)
		if s.peek() != '.' {
			return key
		}
		s.pos++
	}
}

// skipBlank steps over spaces and tabs and, with newlines, over line ends
// and comments too.
func (s *keyScanner) skipBlank(newlines bool) {
	for s.pos < len(s.text) {
		switch c := s.text[s.pos]; {
		case c == ' ' || c == '\t':
			s.pos++
		case newlines && (c == '\r' || c == '\n'):
			s.pos++
		case newlines && c == '#':
			s.skipLine()
		default:
			return
		}
	}
}

// skipLine steps past the end of the current line.
func (s *keyScanner) skipLine() {
	if i := strings.IndexByte(s.text[min(s.pos, len(s.text)):], '\n'); i >= 0 {
		s.pos += i + 1
	} else {
		s.pos = len(s.text)
	}
}

// peek returns the byte at s.pos, or 0 at the end.
func (s *keyScanner) peek() byte {
	if s.pos < len(s.text) {
		return s.text[s.pos]
	}
	return 0
}

// emit records a key that starts at byte offset start.
func (s *keyScanner) emit(key toml.Key, path string, start int) {
	line := sort.SearchInts(s.lineStarts, start+1) // lines count from 1
	s.out = append(s.out, keyPos{key: slices.Clone(key), path: path, line: line})
}

// joinPath appends a key part to a key path, quoted as toml.Key does.
func joinPath(path, part string) string {
	if path == "" {
		return toml.Key{part}.String()
	}
	return path + "." + toml.Key{part}.String()
}

func isBareKeyChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || isDigit(c) || c == '_' || c == '-'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
