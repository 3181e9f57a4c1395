package ipvs

import (
	"net/netip"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier"
)

// Upstream's set names (IPv4; SetName gives the IPv6 ones).
const (
	SetLoopBack              = "KUBE-LOOP-BACK"
	SetClusterIP             = "KUBE-CLUSTER-IP"
	SetExternalIP            = "KUBE-EXTERNAL-IP"
	SetExternalIPLocal       = "KUBE-EXTERNAL-IP-LOCAL"
	SetLoadBalancer          = "KUBE-LOAD-BALANCER"
	SetLoadBalancerFW        = "KUBE-LOAD-BALANCER-FW"
	SetLoadBalancerLocal     = "KUBE-LOAD-BALANCER-LOCAL"
	SetLoadBalancerSourceIP  = "KUBE-LOAD-BALANCER-SOURCE-IP"
	SetLoadBalancerSourceNet = "KUBE-LOAD-BALANCER-SOURCE-CIDR"
	SetNodePortTCP           = "KUBE-NODE-PORT-TCP"
	SetNodePortLocalTCP      = "KUBE-NODE-PORT-LOCAL-TCP"
	SetNodePortUDP           = "KUBE-NODE-PORT-UDP"
	SetNodePortLocalUDP      = "KUBE-NODE-PORT-LOCAL-UDP"
	SetNodePortSCTP          = "KUBE-NODE-PORT-SCTP-HASH"
	SetNodePortLocalSCTP     = "KUBE-NODE-PORT-LOCAL-SCTP-HASH"
	SetHealthCheckNodePort   = "KUBE-HEALTH-CHECK-NODE-PORT"
	SetIPVSIPs               = "KUBE-IPVS-IPS"
)

// SetSpecs are upstream's ipsetInfo for a family, in upstream's order, with
// upstream's comments (used in the iptables rules matching the sets).
func SetSpecs(family v1.IPFamily) []SetSpec {
	if family == "" {
		family = v1.IPv4Protocol
	}
	base := []SetSpec{
		{SetLoopBack, SetHashIPPortIP, "", "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose"},
		{SetClusterIP, SetHashIPPort, "", "Kubernetes service cluster ip + port for masquerade purpose"},
		{SetExternalIP, SetHashIPPort, "", "Kubernetes service external ip + port for masquerade and filter purpose"},
		{SetExternalIPLocal, SetHashIPPort, "", "Kubernetes service external ip + port with externalTrafficPolicy=local"},
		{SetLoadBalancer, SetHashIPPort, "", "Kubernetes service lb portal"},
		{SetLoadBalancerFW, SetHashIPPort, "", "Kubernetes service load balancer ip + port for load balancer with sourceRange"},
		{SetLoadBalancerLocal, SetHashIPPort, "", "Kubernetes service load balancer ip + port with externalTrafficPolicy=local"},
		{SetLoadBalancerSourceIP, SetHashIPPortIP, "", "Kubernetes service load balancer ip + port + source IP for packet filter purpose"},
		{SetLoadBalancerSourceNet, SetHashIPPortNet, "", "Kubernetes service load balancer ip + port + source cidr for packet filter purpose"},
		{SetNodePortTCP, SetBitmapPort, "", "Kubernetes nodeport TCP port for masquerade purpose"},
		{SetNodePortLocalTCP, SetBitmapPort, "", "Kubernetes nodeport TCP port with externalTrafficPolicy=local"},
		{SetNodePortUDP, SetBitmapPort, "", "Kubernetes nodeport UDP port for masquerade purpose"},
		{SetNodePortLocalUDP, SetBitmapPort, "", "Kubernetes nodeport UDP port with externalTrafficPolicy=local"},
		{SetNodePortSCTP, SetHashIPPort, "", "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'"},
		{SetNodePortLocalSCTP, SetHashIPPort, "", "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'"},
		{SetHealthCheckNodePort, SetBitmapPort, "", "Kubernetes health check node port"},
		{SetIPVSIPs, SetHashIP, "", "Addresses on the ipvs interface"},
	}
	for i := range base {
		base[i].Family = family
		base[i].Name = SetName(base[i].Name, family)
	}
	return base
}

// LBNoNodeAccess is a load-balancer VIP:port whose source ranges do not
// include the node: KUBE-IPVS-OUT-FILTER drops the node's own connections
// to it (kubernetes/kubernetes#119656).
type LBNoNodeAccess struct {
	VIP      netip.Addr
	Protocol string // tcp, udp, sctp
	Port     int32
}

// DesiredSets is what the sets should hold. Members is keyed by upstream's
// (IPv4) set name; every set of SetSpecs has a key, maybe with no members.
type DesiredSets struct {
	Family   v1.IPFamily
	Members  map[string][]string
	NoAccess []LBNoNodeAccess
}

// Empty reports whether a set (by upstream IPv4 name) has no member.
func (d *DesiredSets) Empty(base string) bool { return len(d.Members[base]) == 0 }

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

// setMember is one entry of one set (by upstream's IPv4 set name).
type setMember struct{ set, entry string }

// portSets is what one service port puts in the sets.
type portSets struct {
	members  []setMember
	noAccess []LBNoNodeAccess
}

// portSetMembers is one service port's share of the sets. Every set except
// KUBE-IPVS-IPS is the union of these over all service ports.
func portSetMembers(sp *proxier.ServicePort, eps *proxier.EndpointSet, nodeIP netip.Addr, nodePortIPs []netip.Addr) portSets {
	var ps portSets
	proto := strings.ToLower(string(sp.Protocol))
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return ps
	}
	add := func(set, entry string) { ps.members = append(ps.members, setMember{set, entry}) }
	addLoopBack(add, sp, proto, eps)
	if !sp.ClusterIP.IsValid() {
		return ps
	}
	add(SetClusterIP, ipPort(sp.ClusterIP, proto, sp.Port))
	addExternalIPs(add, sp, proto)
	ps.noAccess = addLoadBalancers(add, sp, proto, nodeIP)
	addNodePorts(add, sp, proto, nodePortIPs)
	if sp.HealthCheckNodePort != 0 {
		add(SetHealthCheckNodePort, strconv.Itoa(int(sp.HealthCheckNodePort)))
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
		add(SetLoopBack, ipPort(e.IP, proto, e.Port)+","+e.IP.String())
	}
}

func addExternalIPs(add addFunc, sp *proxier.ServicePort, proto string) {
	for _, a := range sp.ExternalIPs {
		if sp.ExternalPolicyLocal {
			add(SetExternalIPLocal, ipPort(a, proto, sp.Port))
		} else {
			add(SetExternalIP, ipPort(a, proto, sp.Port))
		}
	}
}

// addLoadBalancers fills the LB sets and returns the VIPs the node may not
// reach (source ranges that exclude the node IP).
func addLoadBalancers(add addFunc, sp *proxier.ServicePort, proto string, nodeIP netip.Addr) []LBNoNodeAccess {
	var blocked []LBNoNodeAccess
	for _, vip := range sp.LoadBalancerVIPs {
		entry := ipPort(vip, proto, sp.Port)
		add(SetLoadBalancer, entry)
		if sp.ExternalPolicyLocal {
			add(SetLoadBalancerLocal, entry)
		}
		if !sp.FirewallRequired() {
			continue
		}
		// With only unparseable ranges the VIP is in the FW set and no
		// source is: KUBE-SOURCE-RANGES-FIREWALL drops all (fail closed).
		add(SetLoadBalancerFW, entry)
		allowNode := false
		for _, cidr := range sp.LoadBalancerSourceRanges {
			if cidr.Addr().Is6() != vip.Is6() || cidr.Bits() == 0 {
				continue
			}
			add(SetLoadBalancerSourceNet, entry+","+netEntry(cidr))
			if nodeIP.IsValid() && cidr.Contains(nodeIP) {
				allowNode = true
			}
		}
		if allowNode {
			add(SetLoadBalancerSourceIP, entry+","+vip.String())
		} else {
			blocked = append(blocked, LBNoNodeAccess{VIP: vip, Protocol: proto, Port: sp.Port})
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
		set, local, entries = SetNodePortTCP, SetNodePortLocalTCP, []string{strconv.Itoa(int(sp.NodePort))}
	case "udp":
		set, local, entries = SetNodePortUDP, SetNodePortLocalUDP, []string{strconv.Itoa(int(sp.NodePort))}
	default:
		set, local = SetNodePortSCTP, SetNodePortLocalSCTP
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
