package iptables

import "github.com/kproxy/kproxy/proxier/netfilter"

// Rules that capture a service port's traffic in the top-level chains:
// ClusterIP, external IPs, load-balancer IPs, NodePort and health-check
// NodePort, plus the filter verdicts for ports without usable endpoints.

// writeClusterIP sends ClusterIP traffic to the internal policy chain, or
// rejects/drops it in filter KUBE-SERVICES.
func (r *renderRun) writeClusterIP(p *servicePlan) {
	sp := p.sp
	if p.hasInternal {
		r.nat.services.w.add(netfilter.ServicesChain).comment(p.name, " cluster IP").proto(p.proto).
			addr("-d", sp.ClusterIP).port("--dport", sp.Port).arg("-j", p.internalChain).end()
		return
	}
	r.filter.services.w.add(netfilter.ServicesChain).comment(p.name, p.internalComment).proto(p.proto).
		addr("-d", sp.ClusterIP).port("--dport", sp.Port).arg("-j", p.internalTarget).end()
}

func (r *renderRun) writeExternalIPs(p *servicePlan) {
	sp := p.sp
	for _, ip := range sp.ExternalIPs {
		if p.hasEndpoints {
			r.nat.services.w.add(netfilter.ServicesChain).comment(p.name, " external IP").proto(p.proto).
				addr("-d", ip).port("--dport", sp.Port).arg("-j", p.chains.External).end()
		}
		if !p.hasExternal {
			r.filter.external.w.add(netfilter.ExternalServicesChain).comment(p.name, p.externalComment).proto(p.proto).
				addr("-d", ip).port("--dport", sp.Port).arg("-j", p.externalTarget).end()
		}
	}
}

// writeLoadBalancerIPs captures LB VIPs; with source ranges, traffic goes
// through KUBE-FW and whatever it did not DNAT is dropped by KUBE-PROXY-FIREWALL.
func (r *renderRun) writeLoadBalancerIPs(p *servicePlan) {
	sp := p.sp
	for _, ip := range sp.LoadBalancerVIPs {
		if p.hasEndpoints {
			r.nat.services.w.add(netfilter.ServicesChain).comment(p.name, " loadbalancer IP").proto(p.proto).
				addr("-d", ip).port("--dport", sp.Port).arg("-j", p.loadBalancerChain).end()
		}
		if p.usesFirewall {
			r.filter.proxyFirewall.w.add(netfilter.ProxyFirewallChain).comment(p.name, " traffic not accepted by ", p.chains.Firewall).
				proto(p.proto).addr("-d", ip).port("--dport", sp.Port).arg("-j", "DROP").end()
		}
	}
	if p.hasExternal {
		return
	}
	for _, ip := range sp.LoadBalancerVIPs {
		r.filter.external.w.add(netfilter.ExternalServicesChain).comment(p.name, p.externalComment).proto(p.proto).
			addr("-d", ip).port("--dport", sp.Port).arg("-j", p.externalTarget).end()
	}
}

// writeNodePort jumps to the EXT chain from KUBE-NODEPORTS. NodePorts are
// not subject to loadBalancerSourceRanges (upstream behaviour).
func (r *renderRun) writeNodePort(p *servicePlan) {
	sp := p.sp
	if sp.NodePort == 0 {
		return
	}
	if p.hasEndpoints {
		r.nat.nodePorts.w.add(netfilter.NodePortsChain).comment(p.name).proto(p.proto).
			port("--dport", sp.NodePort).arg("-j", p.chains.External).end()
	}
	if !p.hasExternal {
		r.filter.external.w.add(netfilter.ExternalServicesChain).comment(p.name, p.externalComment).
			arg("-m", "addrtype", "--dst-type", "LOCAL").proto(p.proto).
			port("--dport", sp.NodePort).arg("-j", p.externalTarget).end()
	}
}

// writeHealthCheckNodePort opens the health-check port whether or not the
// node has local endpoints.
func (r *renderRun) writeHealthCheckNodePort(p *servicePlan) {
	if p.sp.HealthCheckNodePort == 0 {
		return
	}
	r.filter.nodePorts.w.add(netfilter.NodePortsChain).comment(p.name, " health check node port").proto("tcp").
		port("--dport", p.sp.HealthCheckNodePort).arg("-j", "ACCEPT").end()
}
