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

// TestApplierWithCanariesRollsBackMangleAndNAT: a full sync writes the
// canaries of mangle, nat and filter with the rules. When filter fails, the
// mangle canary it created and nat must be as they were.
func TestApplierWithCanariesRollsBackMangleAndNAT(t *testing.T) {
	f := ruleset.NewFake(ruleset.FakeOptions{})
	a := rules.NewApplier(f)
	first := &rules.Rules{
		NAT:    []string{"-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN"},
		Filter: []string{"-A KUBE-FORWARD -m mark --mark 0x00004000/0x00004000 -j ACCEPT"},
	}
	if err := a.Apply(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	mangle := func() string {
		out, err := f.Save(context.Background(), "mangle")
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	before, beforeMangle := saveAll(t, f), mangle()
	if strings.Contains(beforeMangle, "KUBE-PROXY-CANARY") {
		t.Fatal("the canary exists before the full sync; the test proves nothing")
	}
	next := &rules.Rules{NAT: []string{"-A KUBE-SERVICES -s 127.0.0.0/8 -j ACCEPT"}, Filter: first.Filter}
	tables, err := a.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.FailNextBlock("filter", 1)
	if err := a.WriteWithCanaries(context.Background(), next, tables); err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("WriteWithCanaries = %v, want the filter failure with mangle and nat rolled back", err)
	}
	if after := saveAll(t, f); after != before {
		t.Errorf("nat and filter after the failed full sync:\n%s\nbefore:\n%s", after, before)
	}
	if after := mangle(); after != beforeMangle {
		t.Errorf("mangle after the failed full sync:\n%s\nbefore:\n%s", after, beforeMangle)
	}
	if tables, err = a.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := a.WriteWithCanaries(context.Background(), next, tables); err != nil {
		t.Fatalf("retry: %v", err)
	}
	for _, table := range []string{"mangle", "nat", "filter"} {
		out, _ := f.Save(context.Background(), table)
		if !strings.Contains(string(out), ":KUBE-PROXY-CANARY") {
			t.Errorf("no canary in %s after the retry", table)
		}
	}
}
