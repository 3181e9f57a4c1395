package nftables

import (
	"github.com/kproxy/kproxy/nftables/nftnl"
)

// writeSkeleton writes the fixed part of the table, as upstream's full sync
// does: the table, the base chains (deleted and re-created once per process,
// so a changed priority cannot fail the transaction), the top-level chains
// flushed and refilled, the sets and maps declared. Element containers are
// flushed by the caller. One batch serves both paths: run over netlink, or
// appended to a knftables transaction for nft -f (Batch.AppendTo).
func writeSkeleton(b *nftnl.Batch, cfg *tableConfig, recreateBaseChains bool) {
	b.AddTable("rules for kube-proxy")
	if recreateBaseChains {
		for _, bc := range baseChains {
			b.AddChain(bc.name)
			b.DeleteChain(bc.name)
		}
	}
	for _, bc := range baseChains {
		b.DeclareChain(nftnl.Chain{Name: bc.name, Hook: &nftnl.Hook{Type: bc.typ, Hook: bc.hook, Priority: bc.priority}})
		b.FlushChain(bc.name)
	}
	created := map[string]bool{}
	for _, j := range jumpChains {
		ensureChain(b, j.dst, created)
		b.AddRule(j.src, nftnl.Rule{Match: j.match, Stmt: nftnl.Jump{Chain: j.dst}})
	}
	for _, c := range []string{servicesChain, clusterIPsCheckChain, masqueradingChain} {
		ensureChain(b, c, created)
	}
	writeMasquerading(b, cfg)
	writeClusterIPsCheck(b, cfg)
	writeNodePortIPs(b, cfg)
	writeNoEndpointChecks(b, cfg)
	removeLocalhostNodePortRejects(b)
	writeFirewallCheck(b, created)
	writeServices(b, cfg)
}

// ensureChain adds and flushes a chain once per transaction.
func ensureChain(b *nftnl.Batch, name string, created map[string]bool) {
	if created[name] {
		return
	}
	created[name] = true
	b.AddChain(name)
	b.FlushChain(name)
}

// Lookup keys of the fixed rules.
var (
	daddrPortKey = []nftnl.PacketField{nftnl.Daddr, nftnl.L4Proto, nftnl.Dport}
	protoPortKey = []nftnl.PacketField{nftnl.L4Proto, nftnl.Dport}
	daddrKey     = []nftnl.PacketField{nftnl.Daddr}
)

// Key types of the fixed sets and maps.
var (
	addrPortKeyType  = []nftnl.KeyField{nftnl.KeyAddr, nftnl.KeyProto, nftnl.KeyPort}
	protoPortKeyType = []nftnl.KeyField{nftnl.KeyProto, nftnl.KeyPort}
	addrKeyType      = []nftnl.KeyField{nftnl.KeyAddr}
)

func writeMasquerading(b *nftnl.Batch, cfg *tableConfig) {
	b.DeclareSet(nftnl.Set{Name: containers[cHairpin].name, Comment: "service hairpin connections",
		Key: []nftnl.KeyField{nftnl.KeyAddr, nftnl.KeyAddr, nftnl.KeyProto, nftnl.KeyPort}})
	b.AddRule(masqueradingChain, nftnl.Rule{Match: nftnl.MarkAny{Mark: cfg.masqMark},
		Stmt: nftnl.Seq{nftnl.MarkXor{Mark: cfg.masqMark}, nftnl.Masquerade{}}})
	hairpin := nftnl.InSet{Set: containers[cHairpin].name,
		Fields: []nftnl.PacketField{nftnl.Saddr, nftnl.Daddr, nftnl.L4Proto, nftnl.Dport}}
	b.AddRule(masqueradingChain, nftnl.Rule{Match: nftnl.All{nftnl.CtStatusDNAT{}, hairpin}, Stmt: nftnl.Masquerade{}})
}

func writeClusterIPsCheck(b *nftnl.Batch, cfg *tableConfig) {
	b.DeclareSet(nftnl.Set{Name: containers[cClusterIPs].name, Key: addrKeyType, Comment: "Active ClusterIPs"})
	b.AddRule(clusterIPsCheckChain, nftnl.Rule{Match: nftnl.InSet{Fields: daddrKey, Set: containers[cClusterIPs].name},
		Stmt: nftnl.Reject{}, Comment: "Reject traffic to invalid ports of ClusterIPs"})
	if len(cfg.serviceCIDRs) > 0 {
		b.AddRule(clusterIPsCheckChain, nftnl.Rule{Match: nftnl.DaddrIn{Prefixes: cfg.serviceCIDRs},
			Stmt: nftnl.Drop{}, Comment: "Drop traffic to unallocated ClusterIPs"})
	}
}

// writeNodePortIPs fills nodeport-ips, or makes sure it is absent when
// NodePorts answer on every address (add then delete: a bare delete fails
// when the set is not there). Loopback addresses never serve NodePorts.
func writeNodePortIPs(b *nftnl.Batch, cfg *tableConfig) {
	b.DeclareSet(nftnl.Set{Name: nodePortIPsSet, Key: addrKeyType, Comment: "IPs that accept NodePort traffic"})
	if cfg.nodePortAll {
		b.DeleteSet(nodePortIPsSet)
		return
	}
	b.FlushSet(nodePortIPsSet, false)
	for _, ip := range cfg.nodePortIPs {
		if ip.IsLoopback() {
			continue
		}
		b.AddElements(nodePortIPsSet, nftnl.Element{Key: []nftnl.Field{nftnl.AddrField(ip)}})
	}
}

func writeNoEndpointChecks(b *nftnl.Batch, cfg *tableConfig) {
	b.DeclareSet(nftnl.Set{Name: containers[cNoEndpointServices].name, Key: addrPortKeyType, Verdicts: true,
		Comment: "vmap to drop or reject packets to services with no endpoints"})
	b.DeclareSet(nftnl.Set{Name: containers[cNoEndpointNodePorts].name, Key: protoPortKeyType, Verdicts: true,
		Comment: "vmap to drop or reject packets to service nodeports with no endpoints"})
	b.DeclareChain(nftnl.Chain{Name: rejectChain, Comment: "helper for @no-endpoint-services / @no-endpoint-nodeports"})
	b.FlushChain(rejectChain)
	b.AddRule(rejectChain, nftnl.Rule{Stmt: nftnl.Reject{}})
	b.AddRule(serviceEndpointsCheckChain, nftnl.Rule{Stmt: nftnl.Vmap{Fields: daddrPortKey, Map: containers[cNoEndpointServices].name}})
	b.AddRule(nodePortEndpointsCheckChain, nftnl.Rule{Match: nodePortDest(cfg, false),
		Stmt: nftnl.Vmap{Fields: protoPortKey, Map: containers[cNoEndpointNodePorts].name}})
}

// nodePortDest matches the destinations NodePorts answer on: a local
// address but loopback (with fib when asked for: the services chain's
// dispatch), or one of nodeport-ips.
func nodePortDest(cfg *tableConfig, fib bool) nftnl.Match {
	switch {
	case !cfg.nodePortAll:
		return nftnl.InSet{Fields: daddrKey, Set: nodePortIPsSet}
	case fib:
		return nftnl.All{nftnl.FibDaddrLocal{}, nftnl.DaddrNot{Prefix: cfg.fam.loopback}}
	}
	return nftnl.DaddrNot{Prefix: cfg.fam.loopback}
}

// removeLocalhostNodePortRejects makes sure upstream's alpha localhost
// NodePort reject objects (off by default, never written by kproxy) are
// gone, the map first since its elements point at the chains, each chain
// before the counter its rule names.
func removeLocalhostNodePortRejects(b *nftnl.Batch) {
	b.DeclareSet(nftnl.Set{Name: localhostNodePortRejectMap, Key: protoPortKeyType, Verdicts: true,
		Comment: "localhost NodePorts rejected by kube-proxy"})
	b.DeleteMap(localhostNodePortRejectMap)
	for _, proto := range localhostRejectProtocols {
		b.AddChain("localhost-nodeport-reject-" + proto)
		b.DeleteChain("localhost-nodeport-reject-" + proto)
		b.AddCounter("localhost-nodeport-rejected-" + proto)
		b.DeleteCounter("localhost-nodeport-rejected-" + proto)
	}
}

func writeFirewallCheck(b *nftnl.Batch, created map[string]bool) {
	b.DeclareSet(nftnl.Set{Name: containers[cFirewallIPs].name, Key: addrPortKeyType, Verdicts: true,
		Comment: "destinations that are subject to LoadBalancerSourceRanges"})
	ensureChain(b, firewallCheckChain, created)
	b.AddRule(firewallCheckChain, nftnl.Rule{Stmt: nftnl.Vmap{Fields: daddrPortKey, Map: containers[cFirewallIPs].name}})
}

// writeServices writes the dispatch: the off-cluster ClusterIP masquerade
// mark, then the two verdict-map lookups.
func writeServices(b *nftnl.Batch, cfg *tableConfig) {
	b.DeclareSet(nftnl.Set{Name: containers[cServiceIPs].name, Key: addrPortKeyType, Verdicts: true,
		Comment: "ClusterIP, ExternalIP and LoadBalancer IP traffic"})
	b.DeclareSet(nftnl.Set{Name: containers[cServiceNodePorts].name, Key: protoPortKeyType, Verdicts: true,
		Comment: "NodePort traffic"})
	clusterIP := nftnl.InSet{Fields: daddrKey, Set: containers[cClusterIPs].name}
	switch {
	case cfg.masqueradeAll:
		b.AddRule(servicesChain, nftnl.Rule{Match: clusterIP, Stmt: cfg.masq(), Comment: "masquerade all clusterIP traffic"})
	case cfg.ifNotLocal != nil:
		b.AddRule(servicesChain, nftnl.Rule{Match: nftnl.All{clusterIP, cfg.ifNotLocal}, Stmt: cfg.masq(),
			Comment: "masquerade clusterIP traffic from outside cluster"})
	}
	b.AddRule(servicesChain, nftnl.Rule{Stmt: nftnl.Vmap{Fields: daddrPortKey, Map: containers[cServiceIPs].name}})
	b.AddRule(servicesChain, nftnl.Rule{Match: nodePortDest(cfg, true),
		Stmt: nftnl.Vmap{Fields: protoPortKey, Map: containers[cServiceNodePorts].name}})
}
