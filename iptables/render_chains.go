package iptables

import (
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
)

// Per-service nat chains: KUBE-EXT, KUBE-FW, KUBE-SVC / KUBE-SVL and KUBE-SEP.
// Each chain is written as one contiguous segment of renderRun.svcBuf.

// writeExternalChain is the entry for NodePort, LB and external-IP traffic.
// It exists whenever the port has endpoints anywhere, because the
// short-circuit rules for pod and host traffic are needed even when ETP=Local
// leaves no local endpoint.
func (r *renderRun) writeExternalChain(p *servicePlan) {
	if !p.usesExternal {
		return
	}
	ext, w := p.chains.External, &r.svc
	r.beginChain(ext)
	if !p.sp.ExternalPolicyLocal {
		w.add(ext).comment("masquerade traffic for ", p.name, " external destinations").arg("-j", netfilter.MarkMasqChain).end()
	} else {
		if r.opts.LocalDetector.Implemented() {
			w.add(ext).comment("pod traffic for ", p.name, " external destinations").
				arg(r.opts.LocalDetector.IfLocal...).arg("-j", p.chains.Cluster).end()
		}
		w.add(ext).comment("masquerade LOCAL traffic for ", p.name, " external destinations").
			arg("-m", "addrtype", "--src-type", "LOCAL", "-j", netfilter.MarkMasqChain).end()
		w.add(ext).comment("route LOCAL traffic for ", p.name, " external destinations").
			arg("-m", "addrtype", "--src-type", "LOCAL", "-j", p.chains.Cluster).end()
	}
	if p.hasExternal {
		w.add(ext).arg("-j", p.externalPolicyChain).end()
	}
	r.endChain(ext)
}

// writeFirewallChain accepts loadBalancerSourceRanges into the EXT chain; the
// rest falls through un-DNATed and is dropped by filter KUBE-PROXY-FIREWALL.
func (r *renderRun) writeFirewallChain(p *servicePlan) {
	if !p.usesFirewall {
		return
	}
	fw, w := p.chains.Firewall, &r.svc
	r.beginChain(fw)
	allowFromNode := false
	for _, cidr := range p.sp.LoadBalancerSourceRanges {
		w.add(fw).comment(p.name, " loadbalancer IP").prefix("-s", cidr).arg("-j", p.chains.External).end()
		for _, ip := range r.nodeIPs {
			allowFromNode = allowFromNode || cidr.Masked().Contains(ip)
		}
	}
	// A VIP that is also a local address loops node-originated requests back
	// with the VIP as source; let those through.
	if allowFromNode {
		for _, ip := range p.sp.LoadBalancerVIPs {
			w.add(fw).comment(p.name, " loadbalancer IP").addr("-s", ip).arg("-j", p.chains.External).end()
		}
	}
	w.add(fw).comment("other traffic to ", p.name, " will be dropped by KUBE-PROXY-FIREWALL").end()
	r.endChain(fw)
}

// endpointInfo is an endpoint with its comment text and chain name.
type endpointInfo struct {
	ep    *proxier.Endpoint
	str   string // ip:port
	chain string // KUBE-SEP-*
}

func (r *renderRun) endpointInfos(p *servicePlan, eps []proxier.Endpoint, into []endpointInfo) []endpointInfo {
	for i := range eps {
		var buf [64]byte
		str := string(eps[i].AppendString(buf[:0]))
		chain := p.port.endpointChain(&eps[i], p.sp.Protocol, str, &r.usedNames)
		into = append(into, endpointInfo{ep: &eps[i], str: str, chain: chain})
	}
	return into
}

// writePolicyChains writes KUBE-SVC and KUBE-SVL, then one KUBE-SEP chain per
// endpoint either of them uses.
func (r *renderRun) writePolicyChains(p *servicePlan) {
	all := r.endpointInfos(p, p.clusterEps, r.scratch[:0])
	nCluster := len(all)
	all = r.endpointInfos(p, p.localEps, all)
	r.scratch = all
	if p.usesCluster {
		r.writeServiceToEndpoints(p, p.chains.Cluster, all[:nCluster])
	}
	if p.usesLocal {
		r.writeServiceToEndpoints(p, p.chains.Local, all[nCluster:])
	}
	for i := range all {
		if i >= nCluster && inCluster(all[:nCluster], all[i].chain) {
			continue
		}
		r.writeEndpointChain(p, &all[i])
	}
}

func inCluster(cluster []endpointInfo, chain string) bool {
	for i := range cluster {
		if cluster[i].chain == chain {
			return true
		}
	}
	return false
}

// writeServiceToEndpoints fills a policy chain: the ClusterIP masquerade rule
// if this is the internal chain, affinity checks, then the random spread.
func (r *renderRun) writeServiceToEndpoints(p *servicePlan, chain string, eps []endpointInfo) {
	w := &r.svc
	r.beginChain(chain)
	if p.hasInternal && chain == p.internalChain {
		r.writeClusterIPMasquerade(p, chain)
	}
	if t := p.sp.AffinityTimeoutSeconds; t > 0 {
		for i := range eps {
			w.add(chain)
			r.endpointComment(p, &eps[i])
			w.arg("-m", "recent", "--name", eps[i].chain, "--rcheck").port("--seconds", t).
				arg("--reap", "-j", eps[i].chain).end()
		}
	}
	n := len(eps)
	for i := range eps {
		w.add(chain)
		r.endpointComment(p, &eps[i])
		if i < n-1 {
			w.arg("-m", "statistic", "--mode", "random", "--probability", r.probs.get(n-i))
		}
		w.arg("-j", eps[i].chain).end()
	}
	r.endChain(chain)
}

// writeClusterIPMasquerade marks off-cluster ClusterIP traffic (all of it with
// masqueradeAll) for SNAT, in case the chosen endpoint is on another node.
func (r *renderRun) writeClusterIPMasquerade(p *servicePlan, chain string) {
	det := &r.opts.LocalDetector
	if !r.opts.MasqueradeAll && !det.Implemented() {
		return
	}
	w := r.svc.add(chain).comment(p.name, " cluster IP").proto(p.proto).
		addr("-d", p.sp.ClusterIP).port("--dport", p.sp.Port)
	if !r.opts.MasqueradeAll {
		w.arg(det.IfNotLocal...)
	}
	w.arg("-j", netfilter.MarkMasqChain).end()
}

func (r *renderRun) endpointComment(p *servicePlan, e *endpointInfo) {
	if !r.large {
		r.svc.comment(p.name, " -> ", e.str)
	}
}

// writeEndpointChain writes a KUBE-SEP chain: hairpin masquerade, then DNAT
// (recording the client for session affinity).
func (r *renderRun) writeEndpointChain(p *servicePlan, e *endpointInfo) {
	w := &r.svc
	r.beginChain(e.chain)
	w.add(e.chain)
	if !r.large {
		w.comment(p.name)
	}
	w.addr("-s", e.ep.IP).arg("-j", netfilter.MarkMasqChain).end()
	w.add(e.chain)
	if !r.large {
		w.comment(p.name)
	}
	if p.sp.AffinityTimeoutSeconds > 0 {
		w.arg("-m", "recent", "--name", e.chain, "--set")
	}
	w.proto(p.proto).arg("-j", "DNAT", "--to-destination", e.str).end()
	r.endChain(e.chain)
}
