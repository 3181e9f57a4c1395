package netfilter_test

import (
	"context"
	"os"
	"slices"
	"strings"
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

// TestIPTablesJumpRulesAreUpstreams pins the jump list to behaviour
// reference 9.1 (ruleset/testdata/jumps.restore), then kubelet's two
// KUBE-FIREWALL jumps.
func TestIPTablesJumpRulesAreUpstreams(t *testing.T) {
	data, err := os.ReadFile("ruleset/testdata/jumps.restore")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for line := range strings.Lines(string(data)) {
		if strings.HasPrefix(line, "-I ") {
			want = append(want, strings.TrimSuffix(line, "\n"))
		}
	}
	want = append(want, "-I INPUT 1 -j KUBE-FIREWALL", "-I OUTPUT 1 -j KUBE-FIREWALL")
	var got []string
	for _, j := range netfilter.IPTablesJumpRules() {
		got = append(got, j.InsertLine())
		if strings.TrimPrefix(j.SaveLine(), "-A "+j.From) != strings.TrimPrefix(j.InsertLine(), "-I "+j.From+" 1") {
			t.Errorf("SaveLine %q and InsertLine %q differ in the rule", j.SaveLine(), j.InsertLine())
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("insert lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
