package netfilter

import (
	"net/netip"
	"strings"
)

// LocalDetector holds the iptables matches that tell pod traffic from other
// traffic (upstream LocalTrafficDetector), e.g. {"-s", "10.0.0.0/8"} and
// {"!", "-s", "10.0.0.0/8"}. Empty slices are the no-op detector: no
// off-cluster ClusterIP masquerade rule and no ETP=Local pod short-circuit
// (iptables mode), and masquerading by source ClusterIP (IPVS mode).
type LocalDetector struct {
	IfLocal    []string
	IfNotLocal []string
}

// Implemented reports whether the detector matches anything (upstream IsImplemented).
func (d *LocalDetector) Implemented() bool { return len(d.IfLocal) > 0 && len(d.IfNotLocal) > 0 }

// NFT returns the same matches as nftables expressions (upstream
// IfLocalNFT / IfNotLocalNFT): "ip saddr 10.0.0.0/8" / "ip saddr != 10.0.0.0/8"
// for a CIDR ("ip6" for an IPv6 one), "iifname br0" / "iifname != br0" for an
// interface, "iifname veth*" for an iptables "veth+" prefix. ok is false for
// the no-op detector and for matches it cannot translate.
func (d *LocalDetector) NFT() (ifLocal, ifNotLocal string, ok bool) {
	prefix, iface, ok := d.NFTSource()
	switch {
	case !ok:
		return "", "", false
	case iface != "":
		return "iifname " + iface, "iifname != " + iface, true
	}
	ip := "ip"
	if prefix.Addr().Is6() {
		ip = "ip6"
	}
	return ip + " saddr " + prefix.String(), ip + " saddr != " + prefix.String(), true
}

// NFTSource is what NFT's "from a pod" match tests, as data: a source
// prefix, or an input interface name (ending in "*" for an iptables "veth+"
// prefix). ok is false for the no-op detector and for matches nftables
// cannot express.
func (d *LocalDetector) NFTSource() (prefix netip.Prefix, iface string, ok bool) {
	if !d.Implemented() || len(d.IfLocal) != 2 {
		return netip.Prefix{}, "", false
	}
	arg := d.IfLocal[1]
	switch d.IfLocal[0] {
	case "-s":
		p, err := netip.ParsePrefix(arg)
		if err != nil {
			return netip.Prefix{}, "", false
		}
		return p, "", true
	case "-i":
		name := arg
		if strings.HasSuffix(name, "+") {
			name = strings.TrimSuffix(name, "+") + "*"
		}
		if name == "" || strings.ContainsAny(name, " \t\n\"';{}") {
			return netip.Prefix{}, "", false
		}
		return netip.Prefix{}, name, true
	}
	return netip.Prefix{}, "", false
}
