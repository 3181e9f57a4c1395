package nftables

import (
	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"
)

// writeSkeleton writes the fixed part of the table, as upstream's full sync
// does: the table, the base chains (deleted and re-created once per process,
// so a changed priority cannot fail the transaction), the top-level chains
// flushed and refilled, the sets and maps declared. Element containers are
// flushed by the caller.
func writeSkeleton(tx *knftables.Transaction, cfg *tableConfig, recreateBaseChains bool) {
	tx.Add(&knftables.Table{Comment: ptr.To("rules for kube-proxy")})
	if recreateBaseChains {
		for _, bc := range baseChains {
			tx.Add(&knftables.Chain{Name: bc.name})
			tx.Delete(&knftables.Chain{Name: bc.name})
		}
	}
	for _, bc := range baseChains {
		c := &knftables.Chain{Name: bc.name, Type: ptr.To(bc.typ), Hook: ptr.To(bc.hook), Priority: ptr.To(bc.priority)}
		tx.Add(c)
		tx.Flush(c)
	}
	created := map[string]bool{}
	for _, j := range jumpChains {
		ensureChain(tx, j.dst, created)
		tx.Add(&knftables.Rule{Chain: j.src, Rule: knftables.Concat(j.match, "jump", j.dst)})
	}
	for _, c := range []string{servicesChain, clusterIPsCheckChain, masqueradingChain} {
		ensureChain(tx, c, created)
	}
	writeMasquerading(tx, cfg)
	writeClusterIPsCheck(tx, cfg)
	writeNodePortIPs(tx, cfg)
	writeNoEndpointChecks(tx, cfg)
	removeLocalhostNodePortRejects(tx)
	writeFirewallCheck(tx, cfg, created)
	writeServices(tx, cfg)
}

// ensureChain adds and flushes a chain once per transaction.
func ensureChain(tx *knftables.Transaction, name string, created map[string]bool) {
	if created[name] {
		return
	}
	created[name] = true
	tx.Add(&knftables.Chain{Name: name})
	tx.Flush(&knftables.Chain{Name: name})
}

func writeMasquerading(tx *knftables.Transaction, cfg *tableConfig) {
	ip, addr := cfg.fam.ip, cfg.fam.addrType
	tx.Add(&knftables.Set{Name: containers[cHairpin].name,
		Type:    addr + " . " + addr + " . inet_proto . inet_service",
		Comment: ptr.To("service hairpin connections")})
	tx.Add(&knftables.Rule{Chain: masqueradingChain, Rule: knftables.Concat(
		"mark", "and", cfg.masqMark, "!=", "0", "mark", "set", "mark", "xor", cfg.masqMark, "masquerade fully-random")})
	tx.Add(&knftables.Rule{Chain: masqueradingChain, Rule: knftables.Concat(
		"ct status dnat", ip, "saddr", ".", ip, "daddr", ".", "meta l4proto", ".", "th dport",
		"@", containers[cHairpin].name, "masquerade fully-random")})
}

func writeClusterIPsCheck(tx *knftables.Transaction, cfg *tableConfig) {
	tx.Add(&knftables.Set{Name: containers[cClusterIPs].name, Type: cfg.fam.addrType, Comment: ptr.To("Active ClusterIPs")})
	tx.Add(&knftables.Rule{Chain: clusterIPsCheckChain,
		Rule:    knftables.Concat(cfg.fam.ip, "daddr", "@", containers[cClusterIPs].name, "reject"),
		Comment: ptr.To("Reject traffic to invalid ports of ClusterIPs")})
	if len(cfg.serviceCIDRs) > 0 {
		tx.Add(&knftables.Rule{Chain: clusterIPsCheckChain,
			Rule:    knftables.Concat(cfg.fam.ip, "daddr", "{", cfg.serviceCIDRList(), "}", "drop"),
			Comment: ptr.To("Drop traffic to unallocated ClusterIPs")})
	}
}

// writeNodePortIPs fills nodeport-ips, or makes sure it is absent when
// NodePorts answer on every address (add then delete: a bare delete fails
// when the set is not there). Loopback addresses never serve NodePorts.
func writeNodePortIPs(tx *knftables.Transaction, cfg *tableConfig) {
	tx.Add(&knftables.Set{Name: nodePortIPsSet, Type: cfg.fam.addrType, Comment: ptr.To("IPs that accept NodePort traffic")})
	if cfg.nodePortAll {
		tx.Delete(&knftables.Set{Name: nodePortIPsSet})
		return
	}
	tx.Flush(&knftables.Set{Name: nodePortIPsSet})
	for _, ip := range cfg.nodePortIPs {
		if ip.IsLoopback() {
			continue
		}
		tx.Add(&knftables.Element{Set: nodePortIPsSet, Key: []string{ip.String()}})
	}
}

func writeNoEndpointChecks(tx *knftables.Transaction, cfg *tableConfig) {
	ip, addr := cfg.fam.ip, cfg.fam.addrType
	tx.Add(&knftables.Map{Name: containers[cNoEndpointServices].name, Type: addr + " . inet_proto . inet_service : verdict",
		Comment: ptr.To("vmap to drop or reject packets to services with no endpoints")})
	tx.Add(&knftables.Map{Name: containers[cNoEndpointNodePorts].name, Type: "inet_proto . inet_service : verdict",
		Comment: ptr.To("vmap to drop or reject packets to service nodeports with no endpoints")})
	tx.Add(&knftables.Chain{Name: rejectChain, Comment: ptr.To("helper for @no-endpoint-services / @no-endpoint-nodeports")})
	tx.Flush(&knftables.Chain{Name: rejectChain})
	tx.Add(&knftables.Rule{Chain: rejectChain, Rule: "reject"})
	tx.Add(&knftables.Rule{Chain: serviceEndpointsCheckChain, Rule: knftables.Concat(
		ip, "daddr", ".", "meta l4proto", ".", "th dport", "vmap", "@", containers[cNoEndpointServices].name)})
	if cfg.nodePortAll {
		tx.Add(&knftables.Rule{Chain: nodePortEndpointsCheckChain, Rule: knftables.Concat(
			ip, "daddr", "!=", cfg.fam.loopback, "meta l4proto . th dport", "vmap", "@", containers[cNoEndpointNodePorts].name)})
		return
	}
	tx.Add(&knftables.Rule{Chain: nodePortEndpointsCheckChain, Rule: knftables.Concat(
		ip, "daddr", "@", nodePortIPsSet, "meta l4proto . th dport", "vmap", "@", containers[cNoEndpointNodePorts].name)})
}

// removeLocalhostNodePortRejects makes sure upstream's alpha localhost
// NodePort reject objects (off by default, never written by kproxy) are
// gone, the map first since its elements point at the chains, each chain
// before the counter its rule names.
func removeLocalhostNodePortRejects(tx *knftables.Transaction) {
	tx.Add(&knftables.Map{Name: localhostNodePortRejectMap, Type: "inet_proto . inet_service : verdict",
		Comment: ptr.To("localhost NodePorts rejected by kube-proxy")})
	tx.Delete(&knftables.Map{Name: localhostNodePortRejectMap})
	for _, proto := range localhostRejectProtocols {
		chain := &knftables.Chain{Name: "localhost-nodeport-reject-" + proto}
		tx.Add(chain)
		tx.Delete(chain)
		counter := &knftables.Counter{Name: "localhost-nodeport-rejected-" + proto}
		tx.Add(counter)
		tx.Delete(counter)
	}
}

func writeFirewallCheck(tx *knftables.Transaction, cfg *tableConfig, created map[string]bool) {
	tx.Add(&knftables.Map{Name: containers[cFirewallIPs].name, Type: cfg.fam.addrType + " . inet_proto . inet_service : verdict",
		Comment: ptr.To("destinations that are subject to LoadBalancerSourceRanges")})
	ensureChain(tx, firewallCheckChain, created)
	tx.Add(&knftables.Rule{Chain: firewallCheckChain, Rule: knftables.Concat(
		cfg.fam.ip, "daddr", ".", "meta l4proto", ".", "th dport", "vmap", "@", containers[cFirewallIPs].name)})
}

// writeServices writes the dispatch: the off-cluster ClusterIP masquerade
// mark, then the two verdict-map lookups.
func writeServices(tx *knftables.Transaction, cfg *tableConfig) {
	ip := cfg.fam.ip
	tx.Add(&knftables.Map{Name: containers[cServiceIPs].name, Type: cfg.fam.addrType + " . inet_proto . inet_service : verdict",
		Comment: ptr.To("ClusterIP, ExternalIP and LoadBalancer IP traffic")})
	tx.Add(&knftables.Map{Name: containers[cServiceNodePorts].name, Type: "inet_proto . inet_service : verdict",
		Comment: ptr.To("NodePort traffic")})
	switch {
	case cfg.masqueradeAll:
		tx.Add(&knftables.Rule{Chain: servicesChain,
			Rule:    knftables.Concat(ip, "daddr", "@", containers[cClusterIPs].name, cfg.masqRule()),
			Comment: ptr.To("masquerade all clusterIP traffic")})
	case cfg.ifNotLocal != "":
		tx.Add(&knftables.Rule{Chain: servicesChain,
			Rule:    knftables.Concat(ip, "daddr", "@", containers[cClusterIPs].name, cfg.ifNotLocal, cfg.masqRule()),
			Comment: ptr.To("masquerade clusterIP traffic from outside cluster")})
	}
	tx.Add(&knftables.Rule{Chain: servicesChain, Rule: knftables.Concat(
		ip, "daddr", ".", "meta l4proto", ".", "th dport", "vmap", "@", containers[cServiceIPs].name)})
	if cfg.nodePortAll {
		tx.Add(&knftables.Rule{Chain: servicesChain, Rule: knftables.Concat(
			"fib daddr type local", ip, "daddr", "!=", cfg.fam.loopback,
			"meta l4proto . th dport", "vmap", "@", containers[cServiceNodePorts].name)})
		return
	}
	tx.Add(&knftables.Rule{Chain: servicesChain, Rule: knftables.Concat(
		ip, "daddr @nodeport-ips", "meta l4proto . th dport", "vmap", "@", containers[cServiceNodePorts].name)})
}
