package main

import (
	"runtime/debug"
	"testing"
)

func TestTuneGCDefaultsUnlessGOGCIsSet(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })

	if p, src := tuneGC(func(string) string { return "" }); p != defaultGCPercent || src != "default" ||
		currentGCPercent() != defaultGCPercent {
		t.Errorf("no GOGC: got %d from %s, runtime at %d; want %d from default", p, src, currentGCPercent(), defaultGCPercent)
	}
	debug.SetGCPercent(200) // as the runtime reads GOGC=200 at start
	env := map[string]string{"GOGC": "200"}
	if p, src := tuneGC(func(k string) string { return env[k] }); p != 200 || src != "GOGC" || currentGCPercent() != 200 {
		t.Errorf("GOGC=200: got %d from %s, runtime at %d; want 200 from GOGC", p, src, currentGCPercent())
	}
}
