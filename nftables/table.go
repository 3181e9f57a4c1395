package nftables

import (
	"net/netip"

	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/knftables"

	"github.com/kproxy/kproxy/nftables/nftnl"
	"github.com/kproxy/kproxy/proxier/netfilter"
)

// Upstream's names of the table's fixed objects.
const (
	filterPreroutingPreDNATChain = "filter-prerouting-pre-dnat"
	filterOutputPreDNATChain     = "filter-output-pre-dnat"
	filterInputChain             = "filter-input"
	filterForwardChain           = "filter-forward"
	filterOutputChain            = "filter-output"
	natPreroutingChain           = "nat-prerouting"
	natOutputChain               = "nat-output"
	natPostroutingChain          = "nat-postrouting"

	servicesChain               = "services"
	serviceEndpointsCheckChain  = "service-endpoints-check"
	nodePortEndpointsCheckChain = "nodeport-endpoints-check"
	rejectChain                 = "reject-chain"
	clusterIPsCheckChain        = "cluster-ips-check"
	firewallCheckChain          = "firewall-check"
	masqueradingChain           = "masquerading"

	nodePortIPsSet             = "nodeport-ips"
	localhostNodePortRejectMap = "localhost-nodeport-reject-ports"
)

// baseChain is a chain attached to a netfilter hook.
type baseChain struct {
	name     string
	typ      knftables.BaseChainType
	hook     knftables.BaseChainHook
	priority knftables.BaseChainPriority
}

// baseChains are upstream's: filtering before DNAT (-110) sees the
// service address and port, the endpoint checks run at filter priority.
var baseChains = [...]baseChain{
	{filterPreroutingPreDNATChain, knftables.FilterType, knftables.PreroutingHook, knftables.DNATPriority + "-10"},
	{filterOutputPreDNATChain, knftables.FilterType, knftables.OutputHook, knftables.DNATPriority + "-10"},
	{filterInputChain, knftables.FilterType, knftables.InputHook, knftables.FilterPriority},
	{filterForwardChain, knftables.FilterType, knftables.ForwardHook, knftables.FilterPriority},
	{filterOutputChain, knftables.FilterType, knftables.OutputHook, knftables.FilterPriority},
	{natPreroutingChain, knftables.NATType, knftables.PreroutingHook, knftables.DNATPriority},
	{natOutputChain, knftables.NATType, knftables.OutputHook, knftables.DNATPriority},
	{natPostroutingChain, knftables.NATType, knftables.PostroutingHook, knftables.SNATPriority},
}

// jumpChain is a jump from a base chain into one of ours, when match
// (if any) does.
type jumpChain struct {
	dst, src string
	match    nftnl.Match
}

// jumpChains are upstream's, in upstream's order (rule order in a base
// chain follows it). The endpoint checks reject, which old kernels allow
// only in input, forward and output hooks.
var jumpChains = [...]jumpChain{
	{nodePortEndpointsCheckChain, filterInputChain, nftnl.CtStateNew{}},
	{serviceEndpointsCheckChain, filterInputChain, nftnl.CtStateNew{}},
	{serviceEndpointsCheckChain, filterForwardChain, nftnl.CtStateNew{}},
	{serviceEndpointsCheckChain, filterOutputChain, nftnl.CtStateNew{}},
	{firewallCheckChain, filterPreroutingPreDNATChain, nftnl.CtStateNew{}},
	{firewallCheckChain, filterOutputPreDNATChain, nftnl.CtStateNew{}},
	{servicesChain, natOutputChain, nil},
	{servicesChain, natPreroutingChain, nil},
	{masqueradingChain, natPostroutingChain, nil},
	{clusterIPsCheckChain, filterForwardChain, nftnl.CtStateNew{}},
	{clusterIPsCheckChain, filterOutputChain, nftnl.CtStateNew{}},
}

// localhostRejectProtocols are the protocols of upstream's (alpha, off by
// default) localhost NodePort reject chains and counters, which a full sync
// makes sure are absent.
var localhostRejectProtocols = [...]string{"tcp", "udp", "sctp"}

// family holds the family-dependent words of the rules.
type family struct {
	nl       nftnl.Family
	ip       string       // "ip" | "ip6"
	addrType string       // "ipv4_addr" | "ipv6_addr"
	loopback netip.Prefix // 127.0.0.0/8 | ::1
}

func familyOf(f v1.IPFamily) family {
	if f == v1.IPv6Protocol {
		return family{nl: nftnl.IPv6, ip: "ip6", addrType: "ipv6_addr", loopback: netip.MustParsePrefix("::1/128")}
	}
	return family{nl: nftnl.IPv4, ip: "ip", addrType: "ipv4_addr", loopback: netip.MustParsePrefix("127.0.0.0/8")}
}

// tableConfig is what the fixed part of the table depends on.
type tableConfig struct {
	fam           family
	masqueradeAll bool
	masqMark      string
	// ifNotLocal is the local detector's "not from a pod" match (nil when none).
	ifNotLocal nftnl.Match
	// nodePortAll: NodePorts on every local address (fib), no nodeport-ips set.
	nodePortAll  bool
	nodePortIPs  []netip.Addr
	serviceCIDRs []netip.Prefix
}

// masq is the statement that marks a packet for masquerading.
func (c *tableConfig) masq() nftnl.MarkOr { return nftnl.MarkOr{Mark: c.masqMark} }

// notLocalMatch is the local detector's "not from a pod" match as a rule
// match (nil for the no-op detector).
func notLocalMatch(d *netfilter.LocalDetector) nftnl.Match {
	prefix, iface, ok := d.NFTSource()
	switch {
	case !ok:
		return nil
	case iface != "":
		return nftnl.IifNameNot{Name: iface}
	}
	return nftnl.SaddrNot{Prefix: prefix}
}
