package sim

import (
	"strings"
	"testing"
)

func TestRunA1Smoke(t *testing.T) {
	sc, err := LoadScenario("../../bench/sim/A1.toml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := sc.Run(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", m)
}

func TestRunTraceDebug(t *testing.T) {
	sc, err := LoadScenario("../../bench/sim/A1.toml")
	if err != nil {
		t.Fatal(err)
	}
	sc.Duration = 140
	var b strings.Builder
	if _, err := sc.Run(1, &b); err != nil {
		t.Fatal(err)
	}
	t.Log(b.String())
}
