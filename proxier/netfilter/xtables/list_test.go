package xtables_test

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// TestKernelListChainMatchesFake: the proxier reads built-in chains with
// ListChain when iptables-save cannot be used, so the real listing and the
// fake's must agree, and a missing chain must be (nil, nil), not an error.
func TestKernelListChainMatchesFake(t *testing.T) {
	ns := newNetns(t)
	r := newRunner(t, ns, v1.IPv4Protocol)
	fake := ruleset.NewFake(ruleset.FakeOptions{})
	input := []byte("*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n" +
		"-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n" +
		"-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\nCOMMIT\n")
	ctx := context.Background()
	for _, target := range []interface {
		Restore(context.Context, []byte) error
	}{r, fake} {
		if err := target.Restore(ctx, input); err != nil {
			t.Fatal(err)
		}
	}
	for _, chain := range []string{"PREROUTING", "KUBE-MARK-MASQ", "KUBE-SERVICES", "KUBE-MISSING"} {
		got, err := r.ListChain(ctx, "nat", chain)
		if err != nil {
			t.Fatalf("ListChain %s: %v", chain, err)
		}
		want, _ := fake.ListChain(ctx, "nat", chain)
		if string(got) != string(want) {
			t.Errorf("ListChain %s:\n%q\nfake:\n%q", chain, got, want)
		}
	}
}
