package main

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/informers"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
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
func (p *proxy) nodeIPsFallback(family v1.IPFamily) []netip.Addr {
	var out []netip.Addr
	for _, a := range p.host.interfaceAddrs(family) {
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

// nodePortAddrs returns the interface addresses of a family that match:
// where NodePorts are accepted when nodePortAddresses is a list.
func (p *proxy) nodePortAddrs(family v1.IPFamily, match netfilter.NodePortMatch) []netip.Addr {
	var out []netip.Addr
	for _, a := range p.host.interfaceAddrs(family) {
		if match.Contains(a) {
			out = append(out, a)
		}
	}
	return out
}

// nodeIPLookupTimeout bounds how long startup waits for this node's Node object.
const nodeIPLookupTimeout = 30 * time.Second

// detectNodeIPs finds the node's primary IPs as upstream does: a specific
// --bind-address wins, else the Node object's addresses, else the interfaces
// (with a log line). They expand nodePortAddresses' "primary" and are the
// tracker's fallback when the Node object has none.
func (p *proxy) detectNodeIPs(ctx context.Context) map[v1.IPFamily][]netip.Addr {
	out := map[v1.IPFamily][]netip.Addr{}
	if b := p.cfg.BindAddress; b.IsValid() && !b.IsUnspecified() {
		out[proxier.FamilyOf(b)] = []netip.Addr{b.Unmap()}
	}
	if node := p.lookupNode(ctx); node != nil {
		for _, fam := range []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol} {
			if len(out[fam]) == 0 {
				out[fam] = proxier.NodeAddresses(node, fam)
			}
		}
	}
	for _, fam := range []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol} {
		if len(out[fam]) == 0 {
			out[fam] = p.nodeIPsFallback(fam)
			p.logger.V(2).Info("No node IP from the Node object; using this host's addresses", "ipFamily", fam, "ips", out[fam])
		}
	}
	return out
}

// lookupNode reads this node's Node object from the manifests or the API server; nil when unavailable.
func (p *proxy) lookupNode(ctx context.Context) *v1.Node {
	if p.cfg.Manifests != "" {
		objs, err := informers.LoadManifests(p.cfg.Manifests)
		if err != nil {
			return nil
		}
		if sel := objs.Select(p.cfg.NodeName); len(sel.Nodes) > 0 {
			return sel.Nodes[0]
		}
		return nil
	}
	if p.client == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, nodeIPLookupTimeout)
	defer cancel()
	for {
		node, err := p.client.GetNode(ctx, p.cfg.NodeName)
		if err == nil {
			return node
		}
		p.logger.V(2).Info("Waiting for this node's Node object", "node", p.cfg.NodeName, "err", err)
		select {
		case <-ctx.Done():
			p.logger.Info("Node object not found; node IPs come from the interfaces", "node", p.cfg.NodeName)
			return nil
		case <-time.After(time.Second):
		}
	}
}
