package rules

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/ipvs/ipset"
	"github.com/kproxy/kproxy/proxier/netfilter"
)

// Options configure Render.
type Options struct {
	// MasqueradeMark is the mark text, e.g. "0x00004000" (required).
	MasqueradeMark string
	// MasqueradeAll masquerades all traffic to ClusterIPs.
	MasqueradeAll bool
	// LocalDetector tells pod traffic apart (clusterCIDR: "! -s CIDR");
	// without one, traffic whose source is a ClusterIP is masqueraded.
	LocalDetector netfilter.LocalDetector
	// RandomFully adds --random-fully to the MASQUERADE rule.
	RandomFully bool
}

// Rules are the rules of one sync, as "-A ..." lines per table, without
// chain declarations, jumps and COMMIT (see Rules.Restore).
type Rules struct {
	NAT, Filter []string
}

// Counts are the rules per table, as kubeproxy_sync_proxy_rules_iptables_total
// reports them: the rules of kproxy's own chains, without the jumps into
// them from the built-in chains (as upstream counts).
func (r *Rules) Counts() map[string]int {
	return map[string]int{"nat": len(r.NAT), "filter": len(r.Filter)}
}

// LBNoNodeAccess is a load-balancer VIP:port whose source ranges do not
// include the node: KUBE-IPVS-OUT-FILTER drops the node's own connections
// to it (kubernetes/kubernetes#119656).
type LBNoNodeAccess struct {
	VIP      netip.Addr
	Protocol string // tcp, udp, sctp
	Port     int32
}

// Sets is what the rules depend on besides Options: which sets are empty
// and the VIPs the node may not reach.
type Sets struct {
	Family v1.IPFamily
	// Empty reports whether a set (by upstream's IPv4 name) has no member.
	Empty    func(set string) bool
	NoAccess []LBNoNodeAccess
}

// setMatch is one row of upstream's ipsetWithIptablesChain.
type setMatch struct {
	set, table, from, to, match, proto string
}

func setMatches() []setMatch {
	return []setMatch{
		{ipset.LoopBack, "nat", netfilter.PostroutingChain, "MASQUERADE", "dst,dst,src", ""},
		{ipset.LoadBalancer, "nat", netfilter.ServicesChain, netfilter.LoadBalancerChain, "dst,dst", ""},
		{ipset.LoadBalancerLocal, "nat", netfilter.LoadBalancerChain, "RETURN", "dst,dst", ""},
		{ipset.NodePortLocalTCP, "nat", netfilter.IPVSNodePortChain, "RETURN", "dst", "tcp"},
		{ipset.NodePortTCP, "nat", netfilter.IPVSNodePortChain, netfilter.MarkMasqChain, "dst", "tcp"},
		{ipset.NodePortLocalUDP, "nat", netfilter.IPVSNodePortChain, "RETURN", "dst", "udp"},
		{ipset.NodePortUDP, "nat", netfilter.IPVSNodePortChain, netfilter.MarkMasqChain, "dst", "udp"},
		{ipset.NodePortLocalSCTP, "nat", netfilter.IPVSNodePortChain, "RETURN", "dst,dst", "sctp"},
		{ipset.NodePortSCTP, "nat", netfilter.IPVSNodePortChain, netfilter.MarkMasqChain, "dst,dst", "sctp"},
		{ipset.LoadBalancerFW, "filter", netfilter.ProxyFirewallChain, netfilter.SourceRangesFirewallChain, "dst,dst", ""},
		{ipset.LoadBalancerSourceNet, "filter", netfilter.SourceRangesFirewallChain, "RETURN", "dst,dst,src", ""},
		{ipset.LoadBalancerSourceIP, "filter", netfilter.SourceRangesFirewallChain, "RETURN", "dst,dst,src", ""},
	}
}

// ruleWriter builds rule lines; names maps upstream set names to the
// family's, comments to their quoted comment.
type ruleWriter struct {
	empty    func(set string) bool
	opts     Options
	names    map[string]string
	comments map[string]string
	rules    Rules
}

func (w *ruleWriter) nat(args ...string) { w.rules.NAT = append(w.rules.NAT, strings.Join(args, " ")) }
func (w *ruleWriter) filter(args ...string) {
	w.rules.Filter = append(w.rules.Filter, strings.Join(args, " "))
}

// matchSet is "-m set --match-set NAME" for an upstream set name.
func (w *ruleWriter) matchSet(set string) string { return "-m set --match-set " + w.names[set] }

// comment is `-m comment --comment "..."` with the set's comment.
func (w *ruleWriter) comment(set string) string { return "-m comment --comment " + w.comments[set] }

// Render is a pure function from the state of the sets to upstream's
// writeIptablesRules output, in upstream's order. Rules that match a set
// are written only when the set is not empty, except the filter rules
// upstream always writes.
func Render(sets Sets, opts Options) *Rules {
	family, empty := sets.Family, sets.Empty
	w := &ruleWriter{empty: empty, opts: opts, names: map[string]string{}, comments: map[string]string{}}
	bases := ipset.Specs(v1.IPv4Protocol)
	for i, spec := range ipset.Specs(family) {
		w.names[bases[i].Name] = spec.Name
		w.comments[bases[i].Name] = `"` + spec.Comment + `"`
	}
	lo := "127.0.0.0/8"
	if family == v1.IPv6Protocol {
		lo = "::1/128"
	}
	w.nat("-A", netfilter.ServicesChain, "-s", lo, "-j", "RETURN")
	w.writeSetMatches()
	w.writeClusterIP()
	w.writeExternalIPs()
	w.nat("-A", netfilter.ServicesChain, "-m addrtype --dst-type LOCAL", "-j", netfilter.IPVSNodePortChain)
	w.nat("-A", netfilter.LoadBalancerChain, "-j", netfilter.MarkMasqChain)
	w.filter("-A", netfilter.SourceRangesFirewallChain, "-j", "DROP")
	for _, e := range sets.NoAccess {
		w.filter("-A", netfilter.IPVSOutFilterChain, "-s", e.VIP.String(), "-m ipvs --vaddr", e.VIP.String(),
			"--vproto", e.Protocol, "--vport", strconv.Itoa(int(e.Port)), "-j", "DROP")
	}
	for _, set := range []string{ipset.ClusterIP, ipset.LoadBalancer} {
		if !empty(set) {
			w.nat("-A", netfilter.ServicesChain, w.matchSet(set), "dst,dst", "-j", "ACCEPT")
		}
	}
	w.writeFilterTail()
	w.writePostrouting()
	return &w.rules
}

func (w *ruleWriter) writeSetMatches() {
	for _, m := range setMatches() {
		if w.empty(m.set) {
			continue
		}
		args := []string{"-A", m.from}
		if m.proto != "" {
			args = append(args, "-p", m.proto)
		}
		args = append(args, w.comment(m.set), w.matchSet(m.set), m.match, "-j", m.to)
		if m.table == "filter" {
			w.filter(args...)
		} else {
			w.nat(args...)
		}
	}
}

func (w *ruleWriter) writeClusterIP() {
	if w.empty(ipset.ClusterIP) {
		return
	}
	head := []string{"-A", netfilter.ServicesChain, w.comment(ipset.ClusterIP), w.matchSet(ipset.ClusterIP)}
	switch det := w.opts.LocalDetector; {
	case w.opts.MasqueradeAll:
		w.nat(append(head, "dst,dst", "-j", netfilter.MarkMasqChain)...)
	case det.Implemented():
		w.nat(slices.Concat(head, []string{"dst,dst"}, det.IfNotLocal, []string{"-j", netfilter.MarkMasqChain})...)
	default:
		// Node-originated traffic picks a VIP of kube-ipvs0 as source.
		w.nat(append(head, "src,dst", "-j", netfilter.MarkMasqChain)...)
	}
}

func (w *ruleWriter) writeExternalIPs() {
	for _, set := range []string{ipset.ExternalIP, ipset.ExternalIPLocal} {
		if w.empty(set) {
			continue
		}
		head := []string{"-A", netfilter.ServicesChain, w.comment(set), w.matchSet(set), "dst,dst"}
		if set == ipset.ExternalIP {
			w.nat(append(head, "-j", netfilter.MarkMasqChain)...)
		}
		w.nat(append(head, "-m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL", "-j", "ACCEPT")...)
		w.nat(append(head, "-m addrtype --dst-type LOCAL", "-j", "ACCEPT")...)
	}
}

func (w *ruleWriter) writeFilterTail() {
	mark := w.opts.MasqueradeMark
	w.filter("-A", netfilter.ForwardChain, `-m comment --comment "kubernetes forwarding rules"`,
		"-m mark --mark", mark+"/"+mark, "-j", "ACCEPT")
	w.filter("-A", netfilter.ForwardChain, `-m comment --comment "kubernetes forwarding conntrack rule"`,
		"-m conntrack --ctstate RELATED,ESTABLISHED", "-j", "ACCEPT")
	w.filter("-A", netfilter.IPVSNodePortChain, w.comment(ipset.HealthCheckNodePort), w.matchSet(ipset.HealthCheckNodePort), "dst", "-j", "ACCEPT")
	for _, set := range []string{ipset.LoadBalancer, ipset.ClusterIP, ipset.ExternalIP, ipset.ExternalIPLocal} {
		w.filter("-A", netfilter.IPVSFilterChain, w.matchSet(set), "dst,dst", "-j", "RETURN")
	}
	w.filter("-A", netfilter.IPVSFilterChain, w.matchSet(ipset.HealthCheckNodePort), "dst", "-j", "RETURN")
	w.filter("-A", netfilter.IPVSFilterChain, "-m conntrack --ctstate NEW", w.matchSet(ipset.IPVSIPs), "dst", "-j", "REJECT")
}

func (w *ruleWriter) writePostrouting() {
	mark := w.opts.MasqueradeMark
	w.nat("-A", netfilter.PostroutingChain, "-m mark ! --mark", mark+"/"+mark, "-j", "RETURN")
	w.nat("-A", netfilter.PostroutingChain, "-j MARK --xor-mark", mark)
	masq := []string{"-A", netfilter.PostroutingChain, `-m comment --comment "kubernetes service traffic requiring SNAT"`, "-j", "MASQUERADE"}
	if w.opts.RandomFully {
		masq = append(masq, "--random-fully")
	}
	w.nat(masq...)
	w.nat("-A", netfilter.MarkMasqChain, "-j MARK --or-mark", mark)
}
