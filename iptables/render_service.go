package iptables

import (
	"github.com/kproxy/kproxy/proxier"
)

// servicePlan is what one service port needs, decided once from its
// traffic policies and categorized endpoints (upstream syncProxyRules' locals).
type servicePlan struct {
	sp     *proxier.ServicePort
	port   *portState
	name   string // svcPortName
	proto  string // lowercase protocol
	chains ServiceChains

	clusterEps, localEps []proxier.Endpoint

	hasEndpoints, hasInternal, hasExternal             bool
	usesCluster, usesLocal, usesExternal, usesFirewall bool

	internalChain       string // SVC or SVL: target of ClusterIP traffic
	externalPolicyChain string // SVC or SVL: target of the EXT chain's last rule
	loadBalancerChain   string // EXT, or FW when source ranges apply

	// Filter verdicts when internal / external traffic has no endpoint to go to.
	internalTarget, internalComment string
	externalTarget, externalComment string
}

var emptyEndpoints proxier.EndpointSet

func (r *renderRun) planService(n serviceName) servicePlan {
	sp, _ := r.snap.Service(n.name)
	eps := r.snap.Endpoints(n.name)
	if eps == nil {
		eps = &emptyEndpoints
	}
	p := servicePlan{sp: sp, name: n.str, proto: lowerProtocol(sp.Protocol), port: n.port}
	p.chains = n.port.chains
	if sp.UsesClusterEndpoints() {
		p.clusterEps = eps.Cluster
	}
	if sp.UsesLocalEndpoints() {
		p.localEps = eps.Local
		p.hasEndpoints = eps.HasAny
	}
	p.hasEndpoints = p.hasEndpoints || len(p.clusterEps) > 0
	p.usesCluster = len(p.clusterEps) > 0
	p.usesLocal = len(p.localEps) > 0

	p.internalChain, p.hasInternal = p.chains.Cluster, p.hasEndpoints && p.usesCluster
	if sp.InternalPolicyLocal {
		p.internalChain, p.hasInternal = p.chains.Local, p.hasEndpoints && p.usesLocal
	}
	p.externalPolicyChain, p.hasExternal = p.chains.Cluster, p.hasEndpoints && p.usesCluster
	if sp.ExternalPolicyLocal {
		p.externalPolicyChain, p.hasExternal = p.chains.Local, p.hasEndpoints && p.usesLocal
	}
	p.usesExternal = p.hasEndpoints && sp.ExternallyAccessible()
	// FirewallRequired, not just the ranges: an unparseable range leaves
	// the firewall on with nothing (or less) allowed, never off.
	p.usesFirewall = p.hasEndpoints && len(sp.LoadBalancerVIPs) > 0 && sp.FirewallRequired()
	p.loadBalancerChain = p.chains.External
	if p.usesFirewall {
		p.loadBalancerChain = p.chains.Firewall
	}
	p.setFilterVerdicts()
	return p
}

// setFilterVerdicts picks REJECT for a service without endpoints and DROP for
// a Local policy without local endpoints.
func (p *servicePlan) setFilterVerdicts() {
	if !p.hasEndpoints {
		p.internalTarget, p.internalComment = "REJECT", " has no endpoints"
		p.externalTarget, p.externalComment = "REJECT", " has no endpoints"
		return
	}
	if !p.hasInternal {
		p.internalTarget, p.internalComment = "DROP", " has no local endpoints"
	}
	if !p.hasExternal {
		p.externalTarget, p.externalComment = "DROP", " has no local endpoints"
	}
}

// service writes everything for one service port: its entries in the
// top-level chains, then its own chains (discarded unless it is rewritten).
func (r *renderRun) service(n serviceName) {
	_, changed := r.snap.Changed[n.name]
	rewrite := r.snap.Full || changed
	if !rewrite && n.port.rendered && n.port.front.valid {
		// Unchanged since its last render: same lines, chains and rule count.
		r.replayFront(n.port)
		r.svc.lines += n.port.lines
		return
	}
	p := r.planService(n)
	mark := r.markFront()
	r.writeClusterIP(&p)
	r.writeExternalIPs(&p)
	r.writeLoadBalancerIPs(&p)
	r.writeNodePort(&p)
	r.writeHealthCheckNodePort(&p)
	r.recordFront(n.port, mark)

	if !rewrite && n.port.rendered {
		r.svc.lines += n.port.lines
		return
	}
	r.svc.discard = !rewrite
	r.group++
	before := r.svc.lines
	r.collect = r.collect[:0]
	r.writeExternalChain(&p)
	r.writeFirewallChain(&p)
	r.writePolicyChains(&p)
	n.port.keepEndpoints(r.usedNames)
	r.usedNames = r.usedNames[:0]
	n.port.lines, n.port.rendered = r.svc.lines-before, true
	r.removed = r.state.setOwned(n.port, r.collect, r.removed)
}
