package netfilter

import (
	"net/netip"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
)

var (
	ipv4Loopback = netip.MustParsePrefix("127.0.0.0/8")
	ipv6Loopback = netip.MustParsePrefix("::1/128")
)

// The keywords of nodePortAddresses, as upstream's configuration spells them.
const (
	NodePortAddressesPrimary   = "primary"
	NodePortAddressesLocalhost = "localhost"
	NodePortAddressesAll       = "all"
)

// NodePortAddresses is the parsed nodePortAddresses list (config parses and
// validates it): keywords plus CIDRs. The zero value (field unset) means
// "all", the iptables/ipvs default.
type NodePortAddresses struct {
	All       bool
	Primary   bool
	Localhost bool
	// CIDRs are the listed prefixes, masked, in input order, both families.
	CIDRs []netip.Prefix
}

// NodePortMatch says which destination addresses of one IP family accept
// NodePort traffic.
type NodePortMatch struct {
	// All means every local address of the family (iptables:
	// -m addrtype --dst-type LOCAL); Prefixes is then nil.
	All      bool
	Prefixes []netip.Prefix
}

// Contains reports whether NodePorts answer on addr.
func (m NodePortMatch) Contains(addr netip.Addr) bool {
	return m.All || slices.ContainsFunc(m.Prefixes, func(p netip.Prefix) bool { return p.Contains(addr) })
}

// ContainsIPv4Loopback reports whether an IPv4 match covers a loopback
// address, which is what enables localhost NodePorts (route_localnet) in
// iptables mode. Only meaningful for the match of the IPv4 family.
func (m NodePortMatch) ContainsIPv4Loopback() bool {
	loopback := netip.MustParseAddr("127.0.0.1")
	if m.All {
		return true
	}
	for _, p := range m.Prefixes {
		if p.Contains(loopback) || (p.Addr().Is4() && p.Addr().IsLoopback()) {
			return true
		}
	}
	return false
}

// ForFamily returns the NodePort destination match for one family, given the
// node's IPs of that family (used to expand "primary" to /32 or /128).
// As upstream, a family with no applicable entry matches all, and a zero
// CIDR (0.0.0.0/0, ::/0) or "all" matches all. "primary" with no node IP of
// the family contributes nothing (upstream always has one: it falls back to
// the loopback address).
func (n NodePortAddresses) ForFamily(family v1.IPFamily, nodeIPs []netip.Addr) NodePortMatch {
	if n.All {
		return NodePortMatch{All: true}
	}
	want6 := family == v1.IPv6Protocol
	var out []netip.Prefix
	add := func(p netip.Prefix) {
		if p.Addr().Is6() == want6 && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	for _, p := range n.CIDRs {
		if p.Bits() == 0 && p.Addr().Is6() == want6 {
			return NodePortMatch{All: true}
		}
		add(p)
	}
	if n.Localhost {
		add(ipv4Loopback)
		add(ipv6Loopback)
	}
	if n.Primary {
		for _, ip := range nodeIPs {
			ip = ip.Unmap()
			add(netip.PrefixFrom(ip, ip.BitLen()))
		}
	}
	if len(out) == 0 {
		return NodePortMatch{All: true}
	}
	return NodePortMatch{Prefixes: out}
}

// String renders the list in its config form, for logs.
func (n NodePortAddresses) String() string {
	var parts []string
	if n.All {
		parts = append(parts, NodePortAddressesAll)
	}
	if n.Primary {
		parts = append(parts, NodePortAddressesPrimary)
	}
	if n.Localhost {
		parts = append(parts, NodePortAddressesLocalhost)
	}
	for _, p := range n.CIDRs {
		parts = append(parts, p.String())
	}
	return strings.Join(parts, ",")
}
