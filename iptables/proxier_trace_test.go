package iptables_test

import (
	"net/netip"
	"testing"

	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// TestSyncedRulesRouteTraffic traces packets through the tables the proxier
// left in the fake, asserting behaviour rather than rule text.
func TestSyncedRulesRouteTraffic(t *testing.T) {
	fake := ruleset.NewFake(ruleset.FakeOptions{})
	p := newProxier(t, fake)
	empty := svcSpec{"ns3", "svc3", "172.30.0.43", 0, nil}
	mustSync(t, p, snapOf(true, nil, svc1, svc2, empty))
	node := netip.MustParseAddr("192.168.0.2")
	opts := ruleset.TraceOptions{NodeIPs: []netip.Addr{node}}
	ap := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

	tests := []struct {
		name       string
		pkt        ruleset.Packet
		want       map[netip.AddrPort]float64
		verdict    string
		masquerade bool
	}{{
		name: "off-cluster client to ClusterIP is spread evenly and masqueraded",
		pkt: ruleset.Packet{Src: netip.MustParseAddr("192.168.5.5"), Dst: netip.MustParseAddr("172.30.0.41"),
			Protocol: "tcp", SPort: 40000, DPort: 80, InIface: "eth0"},
		want:       map[netip.AddrPort]float64{ap("10.180.0.1:80"): 0.5, ap("10.180.0.2:80"): 0.5},
		verdict:    ruleset.VerdictAccept,
		masquerade: true,
	}, {
		name: "pod to ClusterIP is not masqueraded",
		pkt: ruleset.Packet{Src: netip.MustParseAddr("10.180.0.9"), Dst: netip.MustParseAddr("172.30.0.42"),
			Protocol: "tcp", SPort: 40000, DPort: 80, InIface: "cni0"},
		want:    map[netip.AddrPort]float64{ap("10.180.0.3:80"): 1},
		verdict: ruleset.VerdictAccept,
	}, {
		name: "NodePort from outside reaches svc1",
		pkt: ruleset.Packet{Src: netip.MustParseAddr("192.168.5.5"), Dst: node,
			Protocol: "tcp", SPort: 40000, DPort: 3001, InIface: "eth0"},
		want:       map[netip.AddrPort]float64{ap("10.180.0.1:80"): 0.5, ap("10.180.0.2:80"): 0.5},
		verdict:    ruleset.VerdictAccept,
		masquerade: true,
	}, {
		name: "service without endpoints rejects",
		pkt: ruleset.Packet{Src: netip.MustParseAddr("10.180.0.9"), Dst: netip.MustParseAddr("172.30.0.43"),
			Protocol: "tcp", SPort: 40000, DPort: 80, InIface: "cni0"},
		want:    map[netip.AddrPort]float64{},
		verdict: ruleset.VerdictReject,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := ruleset.Trace(fake.Tables(), opts, tc.pkt)
			if err != nil {
				t.Fatalf("trace: %v", err)
			}
			if v := res.Verdicts(); len(v) != 1 || v[0] != tc.verdict {
				t.Errorf("verdicts %v, want [%s]\n%s", v, tc.verdict, res)
			}
			got := res.Destinations()
			if len(got) != len(tc.want) {
				t.Errorf("destinations %v, want %v\n%s", got, tc.want, res)
			}
			for d, p := range tc.want {
				if diff := got[d] - p; diff > 1e-6 || diff < -1e-6 {
					t.Errorf("destination %v probability %v, want %v", d, got[d], p)
				}
			}
			if tc.verdict == ruleset.VerdictAccept && res.Masqueraded() != tc.masquerade {
				t.Errorf("masqueraded = %v, want %v\n%s", res.Masqueraded(), tc.masquerade, res)
			}
		})
	}
}
