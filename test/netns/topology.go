package netns

import (
	"fmt"
	"net/netip"
	"strings"
)

// setup latches the first error of a sequence of ip/sysctl commands, so the
// wiring steps read as a script without an if after every line.
type setup struct {
	err error
}

// ip runs "ip -n ns args..." unless an earlier step failed.
func (s *setup) ip(ns string, args ...string) {
	if s.err != nil {
		return
	}
	argv := append([]string{"-n", ns}, args...)
	if out, err := runCommand("ip", argv...); err != nil {
		s.err = fmt.Errorf("ip %s: %w: %s", strings.Join(argv, " "), err, out)
	}
}

// sysctl sets sysctls inside ns (never in the caller's namespace).
func (s *setup) sysctl(ns string, settings ...string) {
	if s.err != nil {
		return
	}
	argv := append([]string{"netns", "exec", ns, "sysctl", "-q", "-w"}, settings...)
	if out, err := runCommand("ip", argv...); err != nil {
		s.err = fmt.Errorf("sysctl in %s %v: %w: %s", ns, settings, err, out)
	}
}

// addr adds an address; IPv6 addresses skip duplicate address detection so
// they are usable (bindable, routable) at once instead of ~2 s later.
func (s *setup) addr(ns, dev string, a netip.Addr, bits int, extra ...string) {
	args := []string{"addr", "add", netip.PrefixFrom(a, bits).String(), "dev", dev}
	if a.Is6() {
		args = append(args, "nodad")
	}
	s.ip(ns, append(args, extra...)...)
}

func (s *setup) route(ns string, dst string, via netip.Addr) {
	family := "-4"
	if via.Is6() {
		family = "-6"
	}
	s.ip(ns, family, "route", "add", dst, "via", via.String())
}

// build creates namespaces first (so Close knows them all), then wires them.
func (w *World) build() error {
	names := []string{w.Node, w.Node2, w.Client}
	for _, p := range w.AllPods() {
		names = append(names, p.Netns)
	}
	for _, ns := range names {
		if err := w.addNamespace(ns); err != nil {
			return err
		}
	}
	s := &setup{}
	for _, ns := range names {
		s.sysctl(ns, "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	}
	s.sysctl(w.Node, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	s.sysctl(w.Node2, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	s.sysctl(w.Client, "net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0")
	a := w.Addrs
	w.buildBridge(s, w.Node, a.NodeBridgeV4, a.NodeBridgeV6, w.Pods)
	w.buildBridge(s, w.Node2, a.Node2BridgeV4, a.Node2BridgeV6, w.RemotePods)
	w.buildNodeLink(s)
	w.buildClientLink(s)
	return s.err
}

// buildBridge creates cbr0 in node and one veth pair per pod, the pod end
// created directly inside the pod namespace.
func (w *World) buildBridge(s *setup, node string, gw4, gw6 netip.Addr, pods []Pod) {
	s.ip(node, "link", "add", BridgeName, "type", "bridge", "mcast_snooping", "0")
	s.addr(node, BridgeName, gw4, 24)
	s.addr(node, BridgeName, gw6, 64)
	s.ip(node, "link", "set", BridgeName, "up")
	for _, p := range pods {
		s.ip(node, "link", "add", p.HostVeth, "type", "veth", "peer", "name", PodLink, "netns", p.Netns)
		s.ip(node, "link", "set", p.HostVeth, "master", BridgeName)
		s.ip(node, "link", "set", p.HostVeth, "type", "bridge_slave", "hairpin", "on")
		s.ip(node, "link", "set", p.HostVeth, "up")
		s.addr(p.Netns, PodLink, p.IPv4, 24)
		s.addr(p.Netns, PodLink, p.IPv6, 64)
		s.ip(p.Netns, "link", "set", PodLink, "up")
		s.route(p.Netns, "default", gw4)
		s.route(p.Netns, "default", gw6)
	}
}

// buildNodeLink joins node and node2 and routes each node's pod CIDR (and
// the client subnet, for replies from remote pods) over the link.
func (w *World) buildNodeLink(s *setup) {
	a := w.Addrs
	s.ip(w.Node, "link", "add", NodePeerLink, "type", "veth", "peer", "name", PeerNodeLink, "netns", w.Node2)
	s.addr(w.Node, NodePeerLink, a.NodeLinkV4, 24)
	s.addr(w.Node, NodePeerLink, a.NodeLinkV6, 64)
	s.ip(w.Node, "link", "set", NodePeerLink, "up")
	s.addr(w.Node2, PeerNodeLink, a.Node2LinkV4, 24)
	s.addr(w.Node2, PeerNodeLink, a.Node2LinkV6, 64)
	s.ip(w.Node2, "link", "set", PeerNodeLink, "up")
	s.route(w.Node, a.Node2PodCIDRv4.String(), a.Node2LinkV4)
	s.route(w.Node, a.Node2PodCIDRv6.String(), a.Node2LinkV6)
	s.route(w.Node2, a.NodePodCIDRv4.String(), a.NodeLinkV4)
	s.route(w.Node2, a.NodePodCIDRv6.String(), a.NodeLinkV6)
	s.route(w.Node2, a.ClientCIDRv4.String(), a.NodeLinkV4)
	s.route(w.Node2, a.ClientCIDRv6.String(), a.NodeLinkV6)
}

// buildClientLink joins node and client. The node's default route points at
// the client, as a real node's points at its upstream router: locally
// generated traffic to a service IP needs some route before the OUTPUT DNAT.
func (w *World) buildClientLink(s *setup) {
	a := w.Addrs
	s.ip(w.Node, "link", "add", NodeClientLink, "type", "veth", "peer", "name", ClientLink, "netns", w.Client)
	s.addr(w.Node, NodeClientLink, a.NodeV4, 24)
	s.addr(w.Node, NodeClientLink, a.NodeV6, 64)
	s.ip(w.Node, "link", "set", NodeClientLink, "up")
	s.addr(w.Client, ClientLink, a.ClientV4, 24)
	s.addr(w.Client, ClientLink, a.ClientAltV4, 24)
	s.addr(w.Client, ClientLink, a.ClientV6, 64)
	// Deprecated (preferred_lft 0) so it is used only when bound explicitly,
	// like the IPv4 secondary address: ClientV6 stays the default source.
	s.addr(w.Client, ClientLink, a.ClientAltV6, 64, "preferred_lft", "0")
	s.ip(w.Client, "link", "set", ClientLink, "up")
	s.route(w.Client, "default", a.NodeV4)
	s.route(w.Client, "default", a.NodeV6)
	s.route(w.Node, "default", a.ClientV4)
	s.route(w.Node, "default", a.ClientV6)
}
