package nftables

import (
	"strconv"
	"strings"

	"github.com/kproxy/kproxy/proxier"
)

// renderChains adds the chains and affinity sets of one service port.
// Chains come in a fixed order (cluster, local, external, firewall,
// endpoints) so two renderings of the same input compare equal.
func renderChains(ctx *renderContext, r *rendered, v *serviceView) {
	affinity := v.sp.AffinityTimeoutSeconds > 0
	if v.usesCluster {
		r.chains = append(r.chains, policyChain(ctx, v, v.names.cluster, v.cluster, affinity))
	}
	if v.usesLocal {
		r.chains = append(r.chains, policyChain(ctx, v, v.names.local, v.local, affinity))
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
		r.chains = append(r.chains, chain{name: endpointChainName(v.name, ep), rules: []rule{
			{text: "update @" + set + " { " + ctx.fam.ip + " saddr }"},
			{text: "meta l4proto " + v.proto + " dnat to " + endpointAddr(ep)},
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
		c.rules = append(c.rules, rule{text: ctx.masqRule, comment: "masquerade"})
	} else {
		if ctx.ifLocal != "" {
			c.rules = append(c.rules, rule{text: ctx.ifLocal + " goto " + v.names.cluster, comment: "short-circuit pod traffic"})
		}
		c.rules = append(c.rules,
			rule{text: "fib saddr type local " + ctx.masqRule, comment: "masquerade local traffic"},
			rule{text: "fib saddr type local goto " + v.names.cluster, comment: "short-circuit local traffic"})
	}
	if v.hasExternal {
		c.rules = append(c.rules, rule{text: "goto " + v.externalTo})
	}
	return c
}

// firewallChain drops LB traffic from outside loadBalancerSourceRanges.
// The LB VIPs themselves are allowed when a range holds the node IP (a VIP
// bound locally loops back with itself as source). With no valid range
// left (only unparseable ones), kproxy drops everything (fails closed).
func firewallChain(ctx *renderContext, v *serviceView) chain {
	var sources []string
	allowFromNode := false
	for _, p := range v.sp.LoadBalancerSourceRanges {
		sources = append(sources, p.String())
		if ctx.nodeIP.IsValid() && p.Contains(ctx.nodeIP) {
			allowFromNode = true
		}
	}
	if allowFromNode {
		for _, ip := range v.sp.LoadBalancerVIPs {
			sources = append(sources, ip.String())
		}
	}
	if len(sources) == 0 {
		return chain{name: v.names.firewall, rules: []rule{{text: "drop"}}}
	}
	return chain{name: v.names.firewall, rules: []rule{
		{text: ctx.fam.ip + " saddr != { " + strings.Join(sources, " , ") + " } drop"}}}
}

// policyChain spreads traffic over endpoints: one DNAT for a single
// endpoint, else a numgen map; with affinity, jumps to endpoint chains
// (first the ones whose affinity set holds the source).
func policyChain(ctx *renderContext, v *serviceView, name string, eps []proxier.Endpoint, affinity bool) chain {
	c := chain{name: name}
	if affinity {
		var vmap []string
		for i := range eps {
			epChain := endpointChainName(v.name, &eps[i])
			c.rules = append(c.rules, rule{text: ctx.fam.ip + " saddr @" + affinitySetName(v.name, &eps[i]) + " goto " + epChain})
			vmap = append(vmap, strconv.Itoa(i)+" : goto "+epChain)
		}
		c.rules = append(c.rules, rule{text: "numgen random mod " + strconv.Itoa(len(eps)) +
			" vmap { " + strings.Join(vmap, " , ") + " }"})
		return c
	}
	if len(eps) == 1 {
		c.rules = []rule{{text: "meta l4proto " + v.proto + " dnat to " + endpointAddr(&eps[0])}}
		return c
	}
	var b strings.Builder
	b.WriteString("meta l4proto " + v.proto + " dnat " + ctx.fam.ip + " addr . port to numgen random mod " +
		strconv.Itoa(len(eps)) + " map { ")
	for i := range eps {
		if i > 0 {
			b.WriteString(" , ")
		}
		b.WriteString(strconv.Itoa(i) + " : " + eps[i].IP.String() + " . " + strconv.Itoa(int(eps[i].Port)))
	}
	b.WriteString(" }")
	c.rules = []rule{{text: b.String()}}
	return c
}
