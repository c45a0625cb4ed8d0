package sim

import "testing"

// FuzzParseScenario: the scenario parser never panics, and a scenario it
// accepts can be turned into a simulation for every seed (not run: that is
// the slow part).
func FuzzParseScenario(f *testing.F) {
	f.Add([]byte("name = \"x\"\n[[servers]]\noffset = 0\n[client]\nconfig = '''\n[[source]]\nserver = \"s1\"\n'''\n"))
	f.Add([]byte("seeds = [3, 1]\n"))
	f.Add([]byte("[clock]\ndrift = \"nan\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := ParseScenario(data, "fuzz")
		if err != nil {
			return
		}
		if _, err := New(sc.config(sc.Seeds[1])); err != nil {
			t.Fatalf("accepted a scenario that gives no simulation: %v", err)
		}
	})
}
