package config

import (
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/google/go-cmp/cmp"
)

func TestScanKeys(t *testing.T) {
	type pos struct {
		Path string
		Line int
	}
	for _, tt := range []struct {
		name, text string
		want       []pos
	}{{
		name: "tables and arrays of tables",
		text: "driftfile = \"/d\"\n[[source]]\nserver = \"a\"\n\n[[source]]\n  pool = \"b\" # comment\n[step]\nlimit = 3\n",
		want: []pos{{"driftfile", 1}, {"source[0]", 2}, {"source[0].server", 3}, {"source[1]", 5}, {"source[1].pool", 6}, {"step", 7}, {"step.limit", 8}},
	}, {
		name: "dotted keys, quoted keys and inline tables",
		text: "server.ratelimit.burst = 3\n\"log\" . 'level' = \"info\"\nstep = { limit = 1, \"panic\" = 0 }\n",
		want: []pos{{"server.ratelimit.burst", 1}, {"log.level", 2}, {"step", 3}, {"step.limit", 3}, {"step.panic", 3}},
	}, {
		name: "inline array of tables",
		text: "source = [\n  {server = \"a\"},\n  {pool = \"b\", port = 1},\n]\n",
		want: []pos{{"source", 1}, {"source[0].server", 2}, {"source[1].pool", 3}, {"source[1].port", 3}},
	}, {
		name: "strings that look like keys",
		text: "a = \"\"\"\nb = 1\n[c]\n\"\"\"\nd = 'e = 1 [f]'\ng = \"\\\"h = 2\"\ni = '''\n[j]'''\nk = [\"[l]\", # m = 3\n  \"n\"]\no = 1\n",
		want: []pos{{"a", 1}, {"d", 5}, {"g", 6}, {"i", 7}, {"k", 9}, {"o", 11}},
	}, {
		name: "date-times with a space",
		text: "a = 1979-05-27 07:32:00Z\nb = {c = 1979-05-27 07:32:00, d = 1}\n",
		want: []pos{{"a", 1}, {"b", 2}, {"b.c", 2}, {"b.d", 2}},
	}, {
		name: "nested arrays of tables",
		text: "[[a]]\n[[a.b]]\nx = 1\n[[a.b]]\n[[a]]\n[[a.b]]\nx = 2\n[a.c]\n",
		want: []pos{{"a[0]", 1}, {"a[0].b[0]", 2}, {"a[0].b[0].x", 3}, {"a[0].b[1]", 4}, {"a[1]", 5}, {"a[1].b[0]", 6}, {"a[1].b[0].x", 7}, {"a[1].c", 8}},
	}, {
		name: "CRLF line ends",
		text: "[step]\r\nlimit = 3\r\n\r\npanic = 0\r\n",
		want: []pos{{"step", 1}, {"step.limit", 2}, {"step.panic", 4}},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			var v any
			md, err := toml.Decode(tt.text, &v)
			if err != nil {
				t.Fatal(err)
			}
			found := scanKeys(tt.text)
			if !sameKeys(found, md.Keys()) {
				t.Errorf("keys differ from MetaData.Keys %q", md.Keys())
			}
			var got []pos
			for _, k := range found {
				got = append(got, pos{k.path, k.line})
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}
