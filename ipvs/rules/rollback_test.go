package rules_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kproxy/kproxy/ipvs/rules"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

func saveAll(t *testing.T, f *ruleset.Fake) string {
	t.Helper()
	var b strings.Builder
	for _, table := range []string{"nat", "filter"} {
		out, err := f.Save(context.Background(), table)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(out)
	}
	return b.String()
}

// TestRulesApplierRollsBackNAT: IPVS mode writes nat, then filter. When
// filter fails, nat must be as it was, restored from the tables the
// applier read to find missing jumps (no extra Save).
func TestApplierRollsBackNAT(t *testing.T) {
	f := ruleset.NewFake(ruleset.FakeOptions{})
	a := rules.NewApplier(f)
	first := &rules.Rules{
		NAT:    []string{"-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN", "-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000"},
		Filter: []string{"-A KUBE-FORWARD -m mark --mark 0x00004000/0x00004000 -j ACCEPT"},
	}
	if err := a.Apply(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	before := saveAll(t, f)
	saves, _ := f.Reads()

	f.FailNextBlock("filter", 1)
	next := &rules.Rules{
		NAT:    []string{"-A KUBE-SERVICES -s 127.0.0.0/8 -j ACCEPT"},
		Filter: []string{"-A KUBE-FORWARD -j ACCEPT"},
	}
	err := a.Apply(context.Background(), next)
	if err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("Apply = %v, want the filter failure with nat rolled back", err)
	}
	if now, _ := f.Reads(); now-saves != 2 {
		t.Errorf("%d Saves, want 2 (nat and filter, read once to find missing jumps)", now-saves)
	}
	if after := saveAll(t, f); after != before {
		t.Errorf("tables after the failed apply:\n%s\nbefore:\n%s", after, before)
	}
	if err := a.Apply(context.Background(), next); err != nil {
		t.Fatalf("Apply after the fault: %v", err)
	}
	if !strings.Contains(saveAll(t, f), "-A KUBE-SERVICES -s 127.0.0.0/8 -j ACCEPT") {
		t.Error("the retry did not write the new rules")
	}
}
