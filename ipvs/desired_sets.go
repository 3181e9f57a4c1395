package ipvs

import (
	"net/netip"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/ipvs/ipset"
	"github.com/kproxy/kproxy/ipvs/rules"
	"github.com/kproxy/kproxy/proxier"
)

// DesiredSets is what the sets should hold. Members is keyed by upstream's
// (IPv4) set name; every set of ipset.Specs has a key, maybe with no members.
type DesiredSets struct {
	Family   v1.IPFamily
	Members  map[string][]string
	NoAccess []rules.LBNoNodeAccess
}

// Empty reports whether a set (by upstream IPv4 name) has no member.
func (d *DesiredSets) Empty(base string) bool { return len(d.Members[base]) == 0 }

// RulesInput is what the IPVS-mode iptables rules of these sets depend on.
func (d *DesiredSets) RulesInput() rules.Sets {
	return rules.Sets{Family: d.Family, Empty: d.Empty, NoAccess: d.NoAccess}
}

// SetMemberOptions configure BuildDesiredSets.
type SetMemberOptions struct {
	// NodeIP is the node's primary IP of the family (upstream's nodeIP),
	// checked against LB source ranges; invalid means the first of the
	// snapshot's Node.IPs.
	NodeIP netip.Addr
	// NodePortIPs get SCTP NodePort entries; with none, NodePorts are left
	// out entirely (as upstream does when it found no node IP).
	NodePortIPs []netip.Addr
	// Bound are the kube-ipvs0 addresses (Desired.Bind): KUBE-IPVS-IPS.
	Bound []netip.Addr
}

// BuildDesiredSets is a pure function from a snapshot to the members of
// every set, with upstream's syncProxyRules semantics.
func BuildDesiredSets(snap *proxier.Snapshot, opts SetMemberOptions) *DesiredSets {
	return newSetIndex(snap, resolveNodeIP(opts.NodeIP, snap), opts.NodePortIPs).desired(opts.Bound)
}

// resolveNodeIP is nodeIP, or else the first of the snapshot's node IPs of
// the family.
func resolveNodeIP(nodeIP netip.Addr, snap *proxier.Snapshot) netip.Addr {
	if nodeIP.IsValid() {
		return nodeIP
	}
	for _, a := range snap.Node.IPs {
		if a.Is6() == (snap.Family == v1.IPv6Protocol) {
			return a
		}
	}
	return netip.Addr{}
}

// portSets is what one service port puts in the sets.
type portSets struct {
	members  []ipset.Member
	noAccess []rules.LBNoNodeAccess
}

// portSetMembers is one service port's share of the sets. Every set except
// KUBE-IPVS-IPS is the union of these over all service ports.
func portSetMembers(sp *proxier.ServicePort, eps *proxier.EndpointSet, nodeIP netip.Addr, nodePortIPs []netip.Addr) portSets {
	var ps portSets
	proto := strings.ToLower(string(sp.Protocol))
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return ps
	}
	add := func(set, entry string) { ps.members = append(ps.members, ipset.Member{Set: set, Entry: entry}) }
	addLoopBack(add, sp, proto, eps)
	if !sp.ClusterIP.IsValid() {
		return ps
	}
	add(ipset.ClusterIP, ipPort(sp.ClusterIP, proto, sp.Port))
	addExternalIPs(add, sp, proto)
	ps.noAccess = addLoadBalancers(add, sp, proto, nodeIP)
	addNodePorts(add, sp, proto, nodePortIPs)
	if sp.HealthCheckNodePort != 0 {
		add(ipset.HealthCheckNodePort, strconv.Itoa(int(sp.HealthCheckNodePort)))
	}
	return ps
}

type addFunc func(set, entry string)

func ipPort(a netip.Addr, proto string, port int32) string {
	return a.String() + "," + proto + ":" + strconv.Itoa(int(port))
}

// addLoopBack adds ip,proto:port,ip for every local endpoint, so a pod
// reaching itself through the service is masqueraded (hairpin).
func addLoopBack(add addFunc, sp *proxier.ServicePort, proto string, eps *proxier.EndpointSet) {
	if eps == nil {
		return
	}
	for _, e := range eps.All {
		if !e.IsLocal || !e.IP.IsValid() || e.Port <= 0 {
			continue
		}
		add(ipset.LoopBack, ipPort(e.IP, proto, e.Port)+","+e.IP.String())
	}
}

func addExternalIPs(add addFunc, sp *proxier.ServicePort, proto string) {
	for _, a := range sp.ExternalIPs {
		if sp.ExternalPolicyLocal {
			add(ipset.ExternalIPLocal, ipPort(a, proto, sp.Port))
		} else {
			add(ipset.ExternalIP, ipPort(a, proto, sp.Port))
		}
	}
}

// addLoadBalancers fills the LB sets and returns the VIPs the node may not
// reach (source ranges that exclude the node IP).
func addLoadBalancers(add addFunc, sp *proxier.ServicePort, proto string, nodeIP netip.Addr) []rules.LBNoNodeAccess {
	var blocked []rules.LBNoNodeAccess
	for _, vip := range sp.LoadBalancerVIPs {
		entry := ipPort(vip, proto, sp.Port)
		add(ipset.LoadBalancer, entry)
		if sp.ExternalPolicyLocal {
			add(ipset.LoadBalancerLocal, entry)
		}
		if !sp.FirewallRequired() {
			continue
		}
		// With only unparseable ranges the VIP is in the FW set and no
		// source is: KUBE-SOURCE-RANGES-FIREWALL drops all (fail closed).
		add(ipset.LoadBalancerFW, entry)
		allowNode := false
		for _, cidr := range sp.LoadBalancerSourceRanges {
			if cidr.Addr().Is6() != vip.Is6() || cidr.Bits() == 0 {
				continue
			}
			add(ipset.LoadBalancerSourceNet, entry+","+netEntry(cidr))
			if nodeIP.IsValid() && cidr.Contains(nodeIP) {
				allowNode = true
			}
		}
		if allowNode {
			add(ipset.LoadBalancerSourceIP, entry+","+vip.String())
		} else {
			blocked = append(blocked, rules.LBNoNodeAccess{VIP: vip, Protocol: proto, Port: sp.Port})
		}
	}
	return blocked
}

// netEntry is a CIDR the way ipset lists it (masked, host prefixes bare).
// A /0 is skipped by the caller: hash:ip,port,net refuses it.
func netEntry(p netip.Prefix) string {
	p = p.Masked()
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

func addNodePorts(add addFunc, sp *proxier.ServicePort, proto string, nodeIPs []netip.Addr) {
	if sp.NodePort == 0 || len(nodeIPs) == 0 {
		return
	}
	var set, local string
	var entries []string
	switch proto {
	case "tcp":
		set, local, entries = ipset.NodePortTCP, ipset.NodePortLocalTCP, []string{strconv.Itoa(int(sp.NodePort))}
	case "udp":
		set, local, entries = ipset.NodePortUDP, ipset.NodePortLocalUDP, []string{strconv.Itoa(int(sp.NodePort))}
	default:
		set, local = ipset.NodePortSCTP, ipset.NodePortLocalSCTP
		for _, ip := range nodeIPs {
			entries = append(entries, ipPort(ip, proto, sp.NodePort))
		}
	}
	for _, e := range entries {
		add(set, e)
		if sp.ExternalPolicyLocal {
			add(local, e)
		}
	}
}
