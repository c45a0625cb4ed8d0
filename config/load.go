package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// Load reads, decodes and validates the configuration file at path. Keys
// the file leaves out keep their values from Default (and DefaultSource, for
// each [[source]]). Every problem with the file's content — TOML syntax, a
// value of the wrong type, an unknown key, an invalid value — comes back as
// a *ValidationError naming the file, line and key; a syntax or type error
// stops decoding, so it is reported alone.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, path)
}

// Parse is Load for a file already in memory; name is the file name that
// messages show ("<input>" if empty).
func Parse(data []byte, name string) (*Config, error) {
	if name == "" {
		name = "<input>"
	}
	text := string(data)
	fail := func(p Problem) (*Config, error) {
		return nil, &ValidationError{File: name, Problems: []Problem{p}}
	}

	// Sources are held back as Primitives and decoded one by one over
	// DefaultSource, so a key one [[source]] leaves out keeps its default.
	doc := struct {
		Config
		Sources []toml.Primitive `toml:"source"`
	}{Config: Default()}
	md, err := toml.Decode(text, &doc)
	if err != nil {
		// Only a syntax error leaves MetaData empty: decoding starts after
		// the whole document parsed.
		syntax := len(md.Keys()) == 0
		return fail(decodeProblem(err, text, syntax))
	}

	// Lines come from scanKeys; they are trusted only if it saw exactly the
	// keys the toml package did.
	keys := md.Keys()
	found := scanKeys(text)
	if !sameKeys(found, keys) {
		found = nil
	}
	cfg := doc.Config
	cfg.origin = &origin{file: name, lines: map[string]int{}}
	for _, k := range found {
		if _, dup := cfg.origin.lines[k.path]; !dup {
			cfg.origin.lines[k.path] = k.line
		}
	}

	for i, p := range doc.Sources {
		s := DefaultSource()
		if err := md.PrimitiveDecode(p, &s); err != nil {
			prob := decodeProblem(err, text, false)
			// The toml package knows the key but not which source it is in.
			prob.Key = fmt.Sprintf("source[%d]%s", i, strings.TrimPrefix(prob.Key, "source"))
			prob.Line = cfg.origin.line(prob.Key)
			return fail(prob)
		}
		cfg.Sources = append(cfg.Sources, s)
	}

	problems := unknownKeys(keys, found)
	var verr *ValidationError
	if errors.As(cfg.Validate(), &verr) {
		problems = append(problems, verr.Problems...)
	}
	if len(problems) > 0 {
		return nil, newValidationError(name, problems)
	}
	return &cfg, nil
}

// unknownKeys reports the keys that are not in the schema, with their
// paths and lines from found when it is not nil. It does not use
// MetaData.Undecoded because the toml package matches keys case
// insensitively: "MinPoll" would be decoded into minpoll and, next to a
// "minpoll", one would silently win.
func unknownKeys(keys []toml.Key, found []keyPos) []Problem {
	known := schemaKeys()
	unknown := map[string]bool{}
	var problems []Problem
	for i, k := range keys {
		name := k.String()
		if known[name] || hasUnknownParent(k, unknown) {
			continue
		}
		unknown[name] = true
		p := Problem{Key: name, Msg: "unknown key"}
		if found != nil {
			p.Key, p.Line = found[i].path, found[i].line
		}
		for kn := range known {
			if strings.EqualFold(kn, name) {
				p.Msg += fmt.Sprintf(" (keys are case sensitive: did you mean %q?)", kn)
			}
		}
		problems = append(problems, p)
	}
	return problems
}

// hasUnknownParent reports whether a table holding key was already reported,
// so that an unknown table's keys are not reported one by one.
func hasUnknownParent(key toml.Key, unknown map[string]bool) bool {
	for i := 1; i < len(key); i++ {
		if unknown[key[:i].String()] {
			return true
		}
	}
	return false
}

// sameKeys reports whether scanKeys found exactly the keys MetaData.Keys
// lists.
func sameKeys(found []keyPos, keys []toml.Key) bool {
	if len(found) != len(keys) {
		return false
	}
	for i, k := range keys {
		if found[i].key.String() != k.String() {
			return false
		}
	}
	return true
}

// decodeErrorRE matches the errors the toml package makes with fmt.Errorf
// rather than as a toml.ParseError, such as type mismatches.
var decodeErrorRE = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key ("(?:[^"\\]|\\.)*")\): (.*)$`)

// decodeProblem turns an error from the toml package about text into a
// Problem: a syntax error has a line and column, a decoding error a key.
func decodeProblem(err error, text string, syntax bool) Problem {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		if start := pe.Position.Start; syntax && start >= 0 && start <= len(text) {
			// Position.Line counts an error on a line's newline on the
			// next line; the byte offset is exact.
			lineStart := strings.LastIndexByte(text[:start], '\n') + 1
			line := strings.Count(text[:start], "\n") + 1
			col := utf8.RuneCountInString(text[lineStart:start]) + 1
			return Problem{Line: line, Col: col, Msg: pe.Message}
		}
		if syntax {
			return Problem{Line: pe.Position.Line, Col: pe.Position.Col, Msg: pe.Message}
		}
		return Problem{Key: pe.LastKey, Line: pe.Position.Line, Msg: pe.Message}
	}
	if m := decodeErrorRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		key, _ := strconv.Unquote(m[2])
		return Problem{Key: key, Line: line, Msg: m[3]}
	}
	return Problem{Msg: strings.TrimPrefix(err.Error(), "toml: ")}
}

// line returns the line where key, or else the nearest table holding it,
// is defined; 0 if unknown.
func (o *origin) line(key string) int {
	if o == nil {
		return 0
	}
	for key != "" {
		if l, ok := o.lines[key]; ok {
			return l
		}
		key = key[:max(strings.LastIndexByte(key, '.'), strings.LastIndexByte(key, '['), 0)]
	}
	return 0
}

// schemaKeys lists every key of the schema as toml.Key.String writes it,
// without array indexes ("source.port").
func schemaKeys() map[string]bool {
	keys := map[string]bool{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for _, f := range tomlFields(t) {
			path := joinPath(prefix, f.name)
			keys[path] = true
			if sub := tableType(f.typ); sub != nil {
				walk(sub, path)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return keys
}

// tomlField is a struct field that is a TOML key.
type tomlField struct {
	name  string // the TOML key
	index int    // in the struct
	typ   reflect.Type
}

// tomlFields lists the fields of struct type t that have a toml tag.
func tomlFields(t reflect.Type) []tomlField {
	var fields []tomlField
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if f.IsExported() && name != "" && name != "-" {
			fields = append(fields, tomlField{name: name, index: i, typ: f.Type})
		}
	}
	return fields
}

// tableType returns the struct type of a field that is a TOML table or an
// array of tables, or nil for a plain value.
func tableType(t reflect.Type) reflect.Type {
	if t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct && t != reflect.TypeFor[Duration]() {
		return t
	}
	return nil
}
