package netfilter_test

import (
	"context"
	"os"
	"testing"

	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// fixtureFake is a fake holding the named files of ruleset/testdata.
func fixtureFake(t *testing.T, names ...string) *ruleset.Fake {
	t.Helper()
	f := ruleset.NewFake(ruleset.FakeOptions{})
	for _, name := range names {
		data, err := os.ReadFile("ruleset/testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Restore(context.Background(), data); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	return f
}

func TestWithKubeProxyJumpsMatchesKubeProxyInsertions(t *testing.T) {
	f := fixtureFake(t, "fixture_a.restore", "extra.restore")
	got, err := netfilter.WithKubeProxyJumps(f.Tables(), "")
	if err != nil {
		t.Fatal(err)
	}
	want := fixtureFake(t, "fixture_a.restore", "extra.restore", "jumps.restore").Tables()
	for name, tbl := range want {
		if ruleset.FormatSave(got[name]) != ruleset.FormatSave(tbl) {
			t.Errorf("table %s:\n%s\nwant (jumps.restore applied):\n%s", name, ruleset.FormatSave(got[name]), ruleset.FormatSave(tbl))
		}
	}
	// Applying it twice adds nothing.
	again, err := netfilter.WithKubeProxyJumps(got, "")
	if err != nil {
		t.Fatal(err)
	}
	if ruleset.FormatSave(again["nat"]) != ruleset.FormatSave(got["nat"]) {
		t.Error("second WithKubeProxyJumps changed the nat table")
	}
	// The fake itself is untouched.
	if len(f.Table("nat").Chain("PREROUTING").Rules) != 0 {
		t.Error("WithKubeProxyJumps modified the fake's tables")
	}
}
