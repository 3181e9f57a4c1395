package nftables

import (
	"net/netip"

	"github.com/kproxy/kproxy/nftables/nftnl"
	"github.com/kproxy/kproxy/proxier"
)

// renderChains adds the chains and affinity sets of one service port.
// Chains come in a fixed order (cluster, local, external, firewall,
// endpoints) so two renderings of the same input compare equal.
func renderChains(ctx *renderContext, r *rendered, v *serviceView) {
	affinity := v.sp.AffinityTimeoutSeconds > 0
	if v.usesCluster {
		r.chains = append(r.chains, policyChain(v, v.names.cluster, v.cluster, affinity))
	}
	if v.usesLocal {
		r.chains = append(r.chains, policyChain(v, v.names.local, v.local, affinity))
	}
	if v.usesExt {
		r.chains = append(r.chains, externalChain(ctx, v))
	}
	if v.usesFW {
		r.chains = append(r.chains, firewallChain(ctx, v))
	}
	if !affinity {
		return
	}
	for i := range v.reachable {
		ep := &v.reachable[i]
		set := affinitySetName(v.name, ep)
		r.sets = append(r.sets, affinitySet{name: set, timeout: v.sp.AffinityTimeoutSeconds})
		r.chains = append(r.chains, chain{name: endpointChainName(v.name, ep), rules: []nftnl.Rule{
			{Stmt: nftnl.AffinityUpdate{Set: set}},
			{Stmt: dnatTo(v, ep)},
		}})
	}
}

// externalChain sends NodePort, external IP and LB traffic on: masquerade
// with a Cluster policy; with a Local one, short-circuit pod and host
// traffic to the cluster chain (masquerading the host's) and keep the
// client address otherwise.
func externalChain(ctx *renderContext, v *serviceView) chain {
	c := chain{name: v.names.external}
	if !v.sp.ExternalPolicyLocal {
		c.rules = append(c.rules, nftnl.Rule{Stmt: ctx.masq, Comment: "masquerade"})
	} else {
		if ctx.ifLocal != nil {
			c.rules = append(c.rules, nftnl.Rule{Match: ctx.ifLocal, Stmt: nftnl.Goto{Chain: v.names.cluster},
				Comment: "short-circuit pod traffic"})
		}
		c.rules = append(c.rules,
			nftnl.Rule{Match: nftnl.FibSaddrLocal{}, Stmt: ctx.masq, Comment: "masquerade local traffic"},
			nftnl.Rule{Match: nftnl.FibSaddrLocal{}, Stmt: nftnl.Goto{Chain: v.names.cluster}, Comment: "short-circuit local traffic"})
	}
	if v.hasExternal {
		c.rules = append(c.rules, nftnl.Rule{Stmt: nftnl.Goto{Chain: v.externalTo}})
	}
	return c
}

// firewallChain drops LB traffic from outside loadBalancerSourceRanges.
// The LB VIPs themselves are allowed when a range holds the node IP (a VIP
// bound locally loops back with itself as source). With no valid range
// left (only unparseable ones), kproxy drops everything (fails closed).
func firewallChain(ctx *renderContext, v *serviceView) chain {
	var allowed nftnl.SaddrNotIn
	allowFromNode := false
	for _, p := range v.sp.LoadBalancerSourceRanges {
		allowed.Prefixes = append(allowed.Prefixes, p)
		if ctx.nodeIP.IsValid() && p.Contains(ctx.nodeIP) {
			allowFromNode = true
		}
	}
	if allowFromNode {
		allowed.Addrs = append([]netip.Addr(nil), v.sp.LoadBalancerVIPs...)
	}
	if len(allowed.Prefixes)+len(allowed.Addrs) == 0 {
		return chain{name: v.names.firewall, rules: []nftnl.Rule{{Stmt: nftnl.Drop{}}}}
	}
	return chain{name: v.names.firewall, rules: []nftnl.Rule{{Match: allowed, Stmt: nftnl.Drop{}}}}
}

// policyChain spreads traffic over endpoints: one DNAT for a single
// endpoint, else a numgen map; with affinity, jumps to endpoint chains
// (first the ones whose affinity set holds the source).
func policyChain(v *serviceView, name string, eps []proxier.Endpoint, affinity bool) chain {
	c := chain{name: name}
	if affinity {
		spread := nftnl.NumgenGoto{Chains: make([]string, len(eps))}
		for i := range eps {
			epChain := endpointChainName(v.name, &eps[i])
			c.rules = append(c.rules, nftnl.Rule{Match: nftnl.SaddrInSet{Set: affinitySetName(v.name, &eps[i])},
				Stmt: nftnl.Goto{Chain: epChain}})
			spread.Chains[i] = epChain
		}
		c.rules = append(c.rules, nftnl.Rule{Stmt: spread})
		return c
	}
	if len(eps) == 1 {
		c.rules = []nftnl.Rule{{Stmt: dnatTo(v, &eps[0])}}
		return c
	}
	spread := nftnl.NumgenDNAT{Proto: v.proto, To: make([]netip.AddrPort, len(eps))}
	for i := range eps {
		spread.To[i] = netip.AddrPortFrom(eps[i].IP, uint16(eps[i].Port))
	}
	c.rules = []nftnl.Rule{{Stmt: spread}}
	return c
}

// dnatTo is the DNAT of v's protocol to one endpoint.
func dnatTo(v *serviceView, ep *proxier.Endpoint) nftnl.DNAT {
	return nftnl.DNAT{Proto: v.proto, To: netip.AddrPortFrom(ep.IP, uint16(ep.Port))}
}
