package nftables

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/nftables/nftnl"
	. "github.com/kproxy/kproxy/proxier/proxiertest"
)

func TestSwappable(t *testing.T) {
	numgen := nftnl.Rule{Stmt: nftnl.NumgenGoto{Chains: []string{"endpoint-A", "endpoint-B"}}}
	dnat := nftnl.Rule{Stmt: nftnl.DNAT{Proto: "tcp", To: netip.MustParseAddrPort("10.0.0.1:80")}}
	masq := nftnl.Rule{Match: nftnl.SaddrPrefix{Prefix: netip.MustParsePrefix("10.0.0.0/8")}, Stmt: nftnl.MarkOr{Mark: "0x4000"}}
	affinity := nftnl.Rule{Match: nftnl.SaddrInSet{Set: "affinity-A"}, Stmt: nftnl.Goto{Chain: "endpoint-A"}}
	for _, tc := range []struct {
		name      string
		old, next []nftnl.Rule
		want      bool
	}{
		{"numgen to numgen", []nftnl.Rule{masq, numgen}, []nftnl.Rule{masq, numgen}, true},
		{"numgen to one endpoint", []nftnl.Rule{numgen}, []nftnl.Rule{dnat}, true},
		{"one endpoint to numgen: no map to lose", []nftnl.Rule{dnat}, []nftnl.Rule{numgen}, false},
		{"new rules fall through", []nftnl.Rule{numgen}, []nftnl.Rule{numgen, masq}, false},
		{"new last rule matches", []nftnl.Rule{affinity, numgen}, []nftnl.Rule{affinity}, false},
		{"no new rules", []nftnl.Rule{numgen}, nil, false},
	} {
		if got := swappable(&chain{rules: tc.old}, &chain{rules: tc.next}); got != tc.want {
			t.Errorf("%s: swappable = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// An affinity service's endpoint replaced: the new rules go in ahead of
// the old ones; the second batch deletes the old rules, then the affinity
// set they named (the kernel refuses to delete a set a rule names).
func TestSwapDeletesOldAffinitySetsAfterTheirRules(t *testing.T) {
	e, nl := newNetlinkEnv(t, v1.IPv4Protocol)
	svc := Service("ns5", "svc5", ClusterIP("172.30.0.45"), Affinity(600))
	e.world.Apply(svc, SliceFor(svc, Endpoint("10.180.0.3", OnNode("other-node"))))
	e.sync()
	e.world.Apply(SliceFor(svc, Endpoint("10.180.0.7", OnNode("other-node")), Endpoint("10.180.0.8", OnNode("other-node"))))
	e.sync()
	if len(nl.batches) != 2 {
		t.Fatalf("%d batches, want 2:\n%s", len(nl.batches), strings.Join(nl.batches, "\n"))
	}
	first, second := txLines(nl.batches[0]), txLines(nl.batches[1])
	for _, l := range first {
		if strings.HasPrefix(l, "flush chain ip kube-proxy service-") || strings.HasPrefix(l, "delete") {
			t.Errorf("first batch flushes the service chain or deletes: %s", l)
		}
	}
	inserts := slices.DeleteFunc(slices.Clone(first), func(l string) bool { return !strings.HasPrefix(l, "insert rule") })
	if len(inserts) != 3 { // two affinity lookups and the numgen vmap
		t.Errorf("first batch inserts %d rules, want 3:\n%s", len(inserts), strings.Join(first, "\n"))
	}
	lastRule := slices.IndexFunc(second, func(l string) bool { return !strings.HasPrefix(l, "delete rule") })
	if lastRule != 2 || !strings.HasPrefix(second[lastRule], "delete set ip kube-proxy affinity-") || len(second) != 3 {
		t.Errorf("second batch: want the two old rules' deletion, then their affinity set's:\n%s", strings.Join(second, "\n"))
	}
	assertSameAsFullSync(t, e)
}

// Without the chain's rule handles, the chain is flushed and rewritten in
// one transaction, as before swapping existed.
func TestSwapFallsBackToFlushWithoutHandles(t *testing.T) {
	e, nl := newNetlinkEnv(t, v1.IPv4Protocol)
	applyOverallIPv4(e.world)
	e.sync()
	nl.handlesFail = true
	svc4 := Service("ns4", "svc4", ClusterIP("172.30.0.44"), ExternalIPs("192.168.99.33"))
	e.world.Apply(SliceFor(svc4, Endpoint("10.180.0.4", OnNode("other-node")), Endpoint("10.180.0.6", OnNode(testNodeName))))
	e.sync()
	if len(nl.batches) != 1 || !strings.Contains(nl.batches[0], "flush chain ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80\n") {
		t.Fatalf("want one batch flushing svc4's chain:\n%s", strings.Join(nl.batches, "\n"))
	}
	assertSameAsFullSync(t, e)
}
