package ipvs_test

import (
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/ipvs"
	"github.com/kproxy/kproxy/ipvs/ipset"
	"github.com/kproxy/kproxy/ipvs/rules"
	"github.com/kproxy/kproxy/proxier"
	pt "github.com/kproxy/kproxy/proxier/proxiertest"
)

// nonEmptySets renders DesiredSets as "SET member" lines for comparison.
func nonEmptySets(d *ipvs.DesiredSets) []string {
	var out []string
	for name, members := range d.Members {
		for _, m := range members {
			out = append(out, name+" "+m)
		}
	}
	slices.Sort(out)
	return out
}

// withoutNodeIPs is snap as if the node's addresses were unknown.
func withoutNodeIPs(snap *proxier.Snapshot) *proxier.Snapshot {
	snap.Node.IPs = nil
	return snap
}

// TestBuildDesiredSetsMembership holds the cases no golden case
// (cmd/kproxy/testdata/golden, ipvs.dry-run) shows.
func TestBuildDesiredSetsMembership(t *testing.T) {
	node := ipvs.SetMemberOptions{NodeIP: addr(nodeIP), NodePortIPs: addrs(nodeIP, "10.0.0.5")}
	tests := []struct {
		name   string
		snap   *proxier.Snapshot
		opts   ipvs.SetMemberOptions
		want   []string
		access []rules.LBNoNodeAccess
	}{{
		name: "external IPs: cluster policy masquerades, local policy does not",
		snap: snapshot(t,
			e(svc("a", "172.30.0.1", pt.ExternalIPs("203.0.113.1"))),
			e(svc("b", "172.30.0.2", pt.ExternalIPs("203.0.113.2"), pt.ExternalLocal()))),
		opts: node,
		want: []string{"KUBE-CLUSTER-IP 172.30.0.1,tcp:80", "KUBE-CLUSTER-IP 172.30.0.2,tcp:80",
			"KUBE-EXTERNAL-IP 203.0.113.1,tcp:80", "KUBE-EXTERNAL-IP-LOCAL 203.0.113.2,tcp:80"},
	}, {
		name: "TCP and UDP NodePorts use the bitmap sets, ETP=Local also the LOCAL ones",
		snap: snapshot(t,
			e(svc("a", "172.30.0.1", pt.NodePort(30080))),
			e(svcPort("b", "172.30.0.2", v1.ProtocolUDP, 80, 8080, pt.NodePort(30053), pt.ExternalLocal()))),
		opts: node,
		want: []string{"KUBE-CLUSTER-IP 172.30.0.1,tcp:80", "KUBE-CLUSTER-IP 172.30.0.2,udp:80",
			"KUBE-NODE-PORT-LOCAL-UDP 30053",
			"KUBE-NODE-PORT-TCP 30080", "KUBE-NODE-PORT-UDP 30053"},
	}, {
		name: "SCTP NodePorts are one hash entry per node IP",
		snap: snapshot(t, e(svcPort("a", "172.30.0.1", v1.ProtocolSCTP, 80, 8080, pt.NodePort(30132), pt.ExternalLocal()))),
		opts: node,
		want: []string{"KUBE-CLUSTER-IP 172.30.0.1,sctp:80",
			"KUBE-NODE-PORT-LOCAL-SCTP-HASH 10.0.0.5,sctp:30132", "KUBE-NODE-PORT-LOCAL-SCTP-HASH 192.168.1.10,sctp:30132",
			"KUBE-NODE-PORT-SCTP-HASH 10.0.0.5,sctp:30132", "KUBE-NODE-PORT-SCTP-HASH 192.168.1.10,sctp:30132"},
	}, {
		name: "no node IP: NodePorts are left out, as upstream",
		snap: withoutNodeIPs(snapshot(t, e(svc("a", "172.30.0.1", pt.NodePort(30080))))),
		want: []string{"KUBE-CLUSTER-IP 172.30.0.1,tcp:80"},
	}, {
		name: "source ranges without the node block the node (KUBE-IPVS-OUT-FILTER)",
		snap: snapshot(t, e(svc("a", "172.30.0.1", pt.LoadBalancer("198.51.100.7"), pt.SourceRanges("203.0.113.0/24")))),
		opts: node,
		want: []string{"KUBE-CLUSTER-IP 172.30.0.1,tcp:80", "KUBE-LOAD-BALANCER 198.51.100.7,tcp:80",
			"KUBE-LOAD-BALANCER-FW 198.51.100.7,tcp:80",
			"KUBE-LOAD-BALANCER-SOURCE-CIDR 198.51.100.7,tcp:80,203.0.113.0/24"},
		access: []rules.LBNoNodeAccess{{VIP: addr("198.51.100.7"), Protocol: "tcp", Port: 80}},
	}, {
		name: "only unparseable source ranges: VIP firewalled, no source allowed, node blocked (fail closed)",
		snap: snapshot(t, e(svc("a", "172.30.0.1", pt.LoadBalancer("198.51.100.7"), pt.SourceRanges("not-a-cidr")))),
		opts: node,
		want: []string{"KUBE-CLUSTER-IP 172.30.0.1,tcp:80", "KUBE-LOAD-BALANCER 198.51.100.7,tcp:80",
			"KUBE-LOAD-BALANCER-FW 198.51.100.7,tcp:80"},
		access: []rules.LBNoNodeAccess{{VIP: addr("198.51.100.7"), Protocol: "tcp", Port: 80}},
	}, {
		name: "valid and unparseable source ranges: only the valid one allowed",
		snap: snapshot(t, e(svc("a", "172.30.0.1", pt.LoadBalancer("198.51.100.7"), pt.SourceRanges("203.0.113.0/24", "not-a-cidr")))),
		opts: node,
		want: []string{"KUBE-CLUSTER-IP 172.30.0.1,tcp:80", "KUBE-LOAD-BALANCER 198.51.100.7,tcp:80",
			"KUBE-LOAD-BALANCER-FW 198.51.100.7,tcp:80",
			"KUBE-LOAD-BALANCER-SOURCE-CIDR 198.51.100.7,tcp:80,203.0.113.0/24"},
		access: []rules.LBNoNodeAccess{{VIP: addr("198.51.100.7"), Protocol: "tcp", Port: 80}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := ipvs.BuildDesiredSets(tc.snap, tc.opts)
			if got := nonEmptySets(d); !slices.Equal(got, tc.want) {
				t.Errorf("members:\n got %q\nwant %q", got, tc.want)
			}
			if !slices.Equal(d.NoAccess, tc.access) {
				t.Errorf("no-node-access = %v, want %v", d.NoAccess, tc.access)
			}
			if len(d.Members) != len(ipset.Specs(d.Family)) {
				t.Errorf("%d sets keyed, want every one of %d", len(d.Members), len(ipset.Specs(d.Family)))
			}
			bases := ipset.Specs(v1.IPv4Protocol)
			for i, spec := range ipset.Specs(d.Family) {
				for _, m := range d.Members[bases[i].Name] {
					if c, err := ipset.CanonicalEntry(spec.Type, d.Family, m); err != nil || c != m {
						t.Errorf("%s member %q is not canonical for %s: %q, %v", spec.Name, m, spec.Type, c, err)
					}
				}
			}
		})
	}
}

func TestBuildDesiredSetsNodeIPDefaultsToSnapshot(t *testing.T) {
	snap := snapshot(t, e(svc("a", "172.30.0.1", pt.LoadBalancer("198.51.100.7"), pt.SourceRanges("192.168.1.0/24"))))
	snap.Node.IPs = addrs("fd00::1", nodeIP)
	d := ipvs.BuildDesiredSets(snap, ipvs.SetMemberOptions{})
	if len(d.NoAccess) != 0 || d.Empty(ipset.LoadBalancerSourceIP) {
		t.Errorf("node IP %s from the snapshot should be allowed: no-access %v, source-ip %v", nodeIP, d.NoAccess, d.Members[ipset.LoadBalancerSourceIP])
	}
}
