package iptables_test

import (
	"net/netip"
	"testing"

	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// TestSourceRangesFailClosed traces LB traffic through the synced rules:
// an unparseable loadBalancerSourceRanges entry never opens a VIP. It
// allows nothing itself, the valid ranges still allow their sources, and
// with none left every source is dropped; NodePorts are not affected (as
// upstream, source ranges apply to LB IPs only).
func TestSourceRangesFailClosed(t *testing.T) {
	fake := ruleset.NewFake(ruleset.FakeOptions{})
	p := newProxier(t, fake)
	badOnly := svcSpec{"ns1", "bad-only", "172.30.0.51", 3051, []string{"10.180.0.1"}}
	badAndGood := svcSpec{"ns1", "bad-and-good", "172.30.0.52", 3052, []string{"10.180.0.2"}}
	open := svcSpec{"ns1", "open", "172.30.0.53", 3053, []string{"10.180.0.3"}}
	snap := snapOf(true, nil, badOnly, badAndGood, open)
	lb := func(spec svcSpec, vip string, invalid bool, ranges ...string) {
		sp := snap.Services[portName(spec.ns, spec.name)]
		sp.LoadBalancerVIPs = []netip.Addr{netip.MustParseAddr(vip)}
		sp.LoadBalancerSourceRangesInvalid = invalid
		for _, r := range ranges {
			sp.LoadBalancerSourceRanges = append(sp.LoadBalancerSourceRanges, netip.MustParsePrefix(r))
		}
	}
	lb(badOnly, "1.2.3.51", true)
	lb(badAndGood, "1.2.3.52", true, "203.0.113.0/24")
	lb(open, "1.2.3.53", false)
	mustSync(t, p, snap)

	node := netip.MustParseAddr("192.168.0.2")
	opts := ruleset.TraceOptions{NodeIPs: []netip.Addr{node}}
	allowed, other := netip.MustParseAddr("203.0.113.5"), netip.MustParseAddr("198.51.100.5")
	tests := []struct {
		name    string
		src     netip.Addr
		dst     netip.Addr
		dport   uint16
		verdict string
		to      string
	}{
		{"only unparseable ranges: allowed-looking source dropped", allowed, netip.MustParseAddr("1.2.3.51"), 80, ruleset.VerdictDrop, ""},
		{"only unparseable ranges: any source dropped", other, netip.MustParseAddr("1.2.3.51"), 80, ruleset.VerdictDrop, ""},
		{"only unparseable ranges: NodePort still answers", other, node, 3051, ruleset.VerdictAccept, "10.180.0.1:80"},
		{"valid and unparseable: valid range allowed", allowed, netip.MustParseAddr("1.2.3.52"), 80, ruleset.VerdictAccept, "10.180.0.2:80"},
		{"valid and unparseable: other source dropped", other, netip.MustParseAddr("1.2.3.52"), 80, ruleset.VerdictDrop, ""},
		{"no ranges at all: open, as upstream", other, netip.MustParseAddr("1.2.3.53"), 80, ruleset.VerdictAccept, "10.180.0.3:80"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pkt := ruleset.Packet{Src: tc.src, Dst: tc.dst, Protocol: "tcp", SPort: 40000, DPort: tc.dport, InIface: "eth0"}
			res, err := ruleset.Trace(fake.Tables(), opts, pkt)
			if err != nil {
				t.Fatalf("trace: %v", err)
			}
			if v := res.Verdicts(); len(v) != 1 || v[0] != tc.verdict {
				t.Fatalf("verdicts %v, want [%s]\n%s", v, tc.verdict, res)
			}
			got := res.Destinations()
			if tc.to == "" && len(got) != 0 || tc.to != "" && got[netip.MustParseAddrPort(tc.to)] != 1 {
				t.Errorf("destinations %v, want %q\n%s", got, tc.to, res)
			}
		})
	}
}

// TestSourceRangesInvalidIsAChange checks that a range becoming unparseable
// is a change of the service port, so a partial sync rewrites it.
func TestSourceRangesInvalidIsAChange(t *testing.T) {
	a := proxier.ServicePort{LoadBalancerSourceRanges: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	b := a
	b.LoadBalancerSourceRangesInvalid = true
	if a.Equal(&b) {
		t.Error("Equal ignores LoadBalancerSourceRangesInvalid")
	}
	if !(&proxier.ServicePort{LoadBalancerSourceRangesInvalid: true}).FirewallRequired() || (&proxier.ServicePort{}).FirewallRequired() {
		t.Error("FirewallRequired must follow the ranges and the invalid flag")
	}
}
