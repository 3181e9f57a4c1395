package ipvs_test

import (
	"net/netip"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/ipvs"
	"github.com/kproxy/kproxy/ipvs/ipset"
	"github.com/kproxy/kproxy/ipvs/rules"
	"github.com/kproxy/kproxy/proxier"
)

func withSourceRanges(cidrs ...string) svcOpt {
	return func(sp *proxier.ServicePort, _ *proxier.EndpointSet) {
		for _, c := range cidrs {
			sp.LoadBalancerSourceRanges = append(sp.LoadBalancerSourceRanges, netip.MustParsePrefix(c))
		}
	}
}

// withInvalidSourceRanges marks a loadBalancerSourceRanges entry that did not parse.
func withInvalidSourceRanges() svcOpt {
	return func(sp *proxier.ServicePort, _ *proxier.EndpointSet) { sp.LoadBalancerSourceRangesInvalid = true }
}

func withHealthCheckNodePort(port int32) svcOpt {
	return func(sp *proxier.ServicePort, _ *proxier.EndpointSet) { sp.HealthCheckNodePort = port }
}

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

func TestBuildDesiredSetsMembership(t *testing.T) {
	node := ipvs.SetMemberOptions{NodeIP: addr(nodeIP), NodePortIPs: addrs(nodeIP, "10.0.0.5")}
	tests := []struct {
		name   string
		snap   *proxier.Snapshot
		opts   ipvs.SetMemberOptions
		want   []string
		access []rules.LBNoNodeAccess
	}{{
		name: "ClusterIP only; remote endpoints are no hairpin",
		snap: snapshot(e(svc("a", "172.30.0.1", withEndpoints("10.1.0.1:8080")))),
		opts: node,
		want: []string{"KUBE-CLUSTER-IP 172.30.0.1,tcp:80"},
	}, {
		name: "local endpoints go to KUBE-LOOP-BACK",
		snap: snapshot(e(svc("a", "172.30.0.1", withProtocol(v1.ProtocolUDP), withPort(53),
			withEndpoints("local:10.1.0.1:5353", "10.2.0.1:5353")))),
		opts: node,
		want: []string{"KUBE-CLUSTER-IP 172.30.0.1,udp:53", "KUBE-LOOP-BACK 10.1.0.1,udp:5353,10.1.0.1"},
	}, {
		name: "external IPs: cluster policy masquerades, local policy does not",
		snap: snapshot(
			e(svc("a", "172.30.0.1", withExternalIPs("203.0.113.1"))),
			e(svc("b", "172.30.0.2", withExternalIPs("203.0.113.2"), withETPLocal()))),
		opts: node,
		want: []string{"KUBE-CLUSTER-IP 172.30.0.1,tcp:80", "KUBE-CLUSTER-IP 172.30.0.2,tcp:80",
			"KUBE-EXTERNAL-IP 203.0.113.1,tcp:80", "KUBE-EXTERNAL-IP-LOCAL 203.0.113.2,tcp:80"},
	}, {
		name: "TCP and UDP NodePorts use the bitmap sets, ETP=Local also the LOCAL ones",
		snap: snapshot(
			e(svc("a", "172.30.0.1", withNodePort(30080))),
			e(svc("b", "172.30.0.2", withProtocol(v1.ProtocolUDP), withNodePort(30053), withETPLocal(), withHealthCheckNodePort(31000)))),
		opts: node,
		want: []string{"KUBE-CLUSTER-IP 172.30.0.1,tcp:80", "KUBE-CLUSTER-IP 172.30.0.2,udp:80",
			"KUBE-HEALTH-CHECK-NODE-PORT 31000", "KUBE-NODE-PORT-LOCAL-UDP 30053",
			"KUBE-NODE-PORT-TCP 30080", "KUBE-NODE-PORT-UDP 30053"},
	}, {
		name: "SCTP NodePorts are one hash entry per node IP",
		snap: snapshot(e(svc("a", "172.30.0.1", withProtocol(v1.ProtocolSCTP), withNodePort(30132), withETPLocal()))),
		opts: node,
		want: []string{"KUBE-CLUSTER-IP 172.30.0.1,sctp:80",
			"KUBE-NODE-PORT-LOCAL-SCTP-HASH 10.0.0.5,sctp:30132", "KUBE-NODE-PORT-LOCAL-SCTP-HASH 192.168.1.10,sctp:30132",
			"KUBE-NODE-PORT-SCTP-HASH 10.0.0.5,sctp:30132", "KUBE-NODE-PORT-SCTP-HASH 192.168.1.10,sctp:30132"},
	}, {
		name: "no node IP: NodePorts are left out, as upstream",
		snap: snapshot(e(svc("a", "172.30.0.1", withNodePort(30080)))),
		want: []string{"KUBE-CLUSTER-IP 172.30.0.1,tcp:80"},
	}, {
		name: "LB with ETP=Local",
		snap: snapshot(e(svc("a", "172.30.0.1", withLB("198.51.100.7"), withETPLocal()))),
		opts: node,
		want: []string{"KUBE-CLUSTER-IP 172.30.0.1,tcp:80", "KUBE-LOAD-BALANCER 198.51.100.7,tcp:80",
			"KUBE-LOAD-BALANCER-LOCAL 198.51.100.7,tcp:80"},
	}, {
		name: "source ranges including the node allow the VIP as source",
		snap: snapshot(e(svc("a", "172.30.0.1", withLB("198.51.100.7"), withSourceRanges("192.168.1.0/24", "203.0.113.9/32")))),
		opts: node,
		want: []string{"KUBE-CLUSTER-IP 172.30.0.1,tcp:80", "KUBE-LOAD-BALANCER 198.51.100.7,tcp:80",
			"KUBE-LOAD-BALANCER-FW 198.51.100.7,tcp:80",
			"KUBE-LOAD-BALANCER-SOURCE-CIDR 198.51.100.7,tcp:80,192.168.1.0/24",
			"KUBE-LOAD-BALANCER-SOURCE-CIDR 198.51.100.7,tcp:80,203.0.113.9",
			"KUBE-LOAD-BALANCER-SOURCE-IP 198.51.100.7,tcp:80,198.51.100.7"},
	}, {
		name: "source ranges without the node block the node (KUBE-IPVS-OUT-FILTER)",
		snap: snapshot(e(svc("a", "172.30.0.1", withLB("198.51.100.7"), withSourceRanges("203.0.113.0/24")))),
		opts: node,
		want: []string{"KUBE-CLUSTER-IP 172.30.0.1,tcp:80", "KUBE-LOAD-BALANCER 198.51.100.7,tcp:80",
			"KUBE-LOAD-BALANCER-FW 198.51.100.7,tcp:80",
			"KUBE-LOAD-BALANCER-SOURCE-CIDR 198.51.100.7,tcp:80,203.0.113.0/24"},
		access: []rules.LBNoNodeAccess{{VIP: addr("198.51.100.7"), Protocol: "tcp", Port: 80}},
	}, {
		name: "only unparseable source ranges: VIP firewalled, no source allowed, node blocked (fail closed)",
		snap: snapshot(e(svc("a", "172.30.0.1", withLB("198.51.100.7"), withInvalidSourceRanges()))),
		opts: node,
		want: []string{"KUBE-CLUSTER-IP 172.30.0.1,tcp:80", "KUBE-LOAD-BALANCER 198.51.100.7,tcp:80",
			"KUBE-LOAD-BALANCER-FW 198.51.100.7,tcp:80"},
		access: []rules.LBNoNodeAccess{{VIP: addr("198.51.100.7"), Protocol: "tcp", Port: 80}},
	}, {
		name: "valid and unparseable source ranges: only the valid one allowed",
		snap: snapshot(e(svc("a", "172.30.0.1", withLB("198.51.100.7"), withSourceRanges("203.0.113.0/24"), withInvalidSourceRanges()))),
		opts: node,
		want: []string{"KUBE-CLUSTER-IP 172.30.0.1,tcp:80", "KUBE-LOAD-BALANCER 198.51.100.7,tcp:80",
			"KUBE-LOAD-BALANCER-FW 198.51.100.7,tcp:80",
			"KUBE-LOAD-BALANCER-SOURCE-CIDR 198.51.100.7,tcp:80,203.0.113.0/24"},
		access: []rules.LBNoNodeAccess{{VIP: addr("198.51.100.7"), Protocol: "tcp", Port: 80}},
	}, {
		name: "KUBE-IPVS-IPS holds the bound addresses",
		snap: snapshot(e(svc("a", "172.30.0.1"))),
		opts: ipvs.SetMemberOptions{Bound: addrs("172.30.0.1", "203.0.113.1")},
		want: []string{"KUBE-CLUSTER-IP 172.30.0.1,tcp:80", "KUBE-IPVS-IPS 172.30.0.1", "KUBE-IPVS-IPS 203.0.113.1"},
	}, {
		name: "IPv6 entries, keyed by the upstream name",
		snap: snapshot(e(svc("a", "fd00:30::1", withNodePort(30080), withEndpoints("local:[fd00:1::1]:8080")))),
		opts: ipvs.SetMemberOptions{NodePortIPs: addrs("fd00::10")},
		want: []string{"KUBE-CLUSTER-IP fd00:30::1,tcp:80", "KUBE-LOOP-BACK fd00:1::1,tcp:8080,fd00:1::1", "KUBE-NODE-PORT-TCP 30080"},
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
	snap := snapshot(e(svc("a", "172.30.0.1", withLB("198.51.100.7"), withSourceRanges("192.168.1.0/24"))))
	snap.Node.IPs = addrs("fd00::1", nodeIP)
	d := ipvs.BuildDesiredSets(snap, ipvs.SetMemberOptions{})
	if len(d.NoAccess) != 0 || d.Empty(ipset.LoadBalancerSourceIP) {
		t.Errorf("node IP %s from the snapshot should be allowed: no-access %v, source-ip %v", nodeIP, d.NoAccess, d.Members[ipset.LoadBalancerSourceIP])
	}
}
