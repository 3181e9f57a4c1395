package iptables

import "github.com/kproxy/kproxy/proxier/netfilter"

// Top-level rules that do not depend on services: masquerade plumbing,
// forwarding, the localnet guard and the NodePort tail of nat KUBE-SERVICES.

func (r *renderRun) writeTopLevel() {
	r.writeMasquerade()
	r.writeNodePortsTail()
	r.writeForward()
	if r.localhostNodePorts {
		r.writeLocalnetGuard()
	}
}

// writeMasquerade writes KUBE-POSTROUTING (masquerade marked packets, clearing
// the mark so a re-traversal does not masquerade again) and KUBE-MARK-MASQ.
func (r *renderRun) writeMasquerade() {
	mark := r.opts.MasqueradeMark
	w := &r.nat.postrouting.w
	w.add(netfilter.PostroutingChain).arg("-m", "mark", "!", "--mark", mark+"/"+mark, "-j", "RETURN").end()
	w.add(netfilter.PostroutingChain).arg("-j", "MARK", "--xor-mark", mark).end()
	w.add(netfilter.PostroutingChain).comment("kubernetes service traffic requiring SNAT").arg("-j", "MASQUERADE")
	if r.opts.RandomFully {
		w.arg("--random-fully")
	}
	w.end()
	r.nat.markMasq.w.add(netfilter.MarkMasqChain).arg("-j", "MARK", "--or-mark", mark).end()
}

const nodePortsTailComment = "kubernetes service nodeports; NOTE: this must be the last rule in this chain"

// writeNodePortsTail ends nat KUBE-SERVICES with the jump to KUBE-NODEPORTS
// for local destinations (or each configured node IP).
func (r *renderRun) writeNodePortsTail() {
	w := &r.nat.services.w
	npa := &r.opts.NodePortAddresses
	if !npa.Restricted {
		w.add(netfilter.ServicesChain).comment(nodePortsTailComment).arg("-m", "addrtype", "--dst-type", "LOCAL")
		if r.ipv6 {
			w.arg("!", "-d", "::1/128")
		} else if !r.localhostNodePorts {
			w.arg("!", "-d", "127.0.0.0/8")
		}
		w.arg("-j", netfilter.NodePortsChain).end()
		return
	}
	for _, ip := range npa.IPs {
		// Loopback NodePorts never work on IPv6 and need route_localnet on IPv4.
		if ip.IsLoopback() && (r.ipv6 || !r.localhostNodePorts) {
			continue
		}
		if ip.Is4() == r.ipv6 {
			continue
		}
		w.add(netfilter.ServicesChain).comment(nodePortsTailComment).addr("-d", ip).arg("-j", netfilter.NodePortsChain).end()
	}
}

// writeForward fills filter KUBE-FORWARD: drop conntrack-INVALID packets
// (unless tcp_be_liberal), accept marked traffic and its replies.
func (r *renderRun) writeForward() {
	w := &r.filter.forward.w
	if !r.opts.ConntrackTCPBeLiberal {
		w.add(netfilter.ForwardChain).arg("-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP").end()
	}
	mark := r.opts.MasqueradeMark
	w.add(netfilter.ForwardChain).comment("kubernetes forwarding rules").arg("-m", "mark", "--mark", mark+"/"+mark, "-j", "ACCEPT").end()
	w.add(netfilter.ForwardChain).comment("kubernetes forwarding conntrack rule").
		arg("-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT").end()
}

// writeLocalnetGuard is the CVE-2020-8558 mitigation that comes with
// route_localnet; kubelet writes an identical rule into the same chain.
func (r *renderRun) writeLocalnetGuard() {
	r.filter.firewall.w.add(netfilter.FirewallChain).comment("block incoming localnet connections").
		arg("-d", "127.0.0.0/8", "!", "-s", "127.0.0.0/8", "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-j", "DROP").end()
}
