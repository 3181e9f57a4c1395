package main

import (
	"net"
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier"
)

// interfaceAddrs lists this network namespace's addresses of one family,
// global unicast first, then loopback (for localhost NodePorts).
func interfaceAddrs(family v1.IPFamily) []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if proxier.FamilyOf(ip) != family || ip.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, ip)
	}
	slices.SortStableFunc(out, func(a, b netip.Addr) int {
		return boolRank(a.IsLoopback()) - boolRank(b.IsLoopback())
	})
	return out
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// nodeIPsFallback supplies node IPs when the Node object has none: the
// interfaces' global addresses, else the loopback address (as upstream does, with a warning).
func nodeIPsFallback(family v1.IPFamily) []netip.Addr {
	var out []netip.Addr
	for _, a := range interfaceAddrs(family) {
		if !a.IsLoopback() {
			out = append(out, a)
		}
	}
	if len(out) > 0 {
		return out
	}
	if family == v1.IPv4Protocol {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	}
	return []netip.Addr{netip.IPv6Loopback()}
}

// addrsInPrefixes returns the interface addresses of a family inside any of
// the prefixes: where NodePorts are accepted when nodePortAddresses is a list.
func addrsInPrefixes(family v1.IPFamily, prefixes []netip.Prefix) []netip.Addr {
	var out []netip.Addr
	for _, a := range interfaceAddrs(family) {
		for _, p := range prefixes {
			if p.Contains(a) {
				out = append(out, a)
				break
			}
		}
	}
	return out
}
