package ipvs

import (
	"slices"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier/netfilter"
)

// RulesOptions configure RenderRules.
type RulesOptions struct {
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

// setMatch is one row of upstream's ipsetWithIptablesChain.
type setMatch struct {
	set, table, from, to, match, proto string
}

func setMatches() []setMatch {
	return []setMatch{
		{SetLoopBack, "nat", netfilter.PostroutingChain, "MASQUERADE", "dst,dst,src", ""},
		{SetLoadBalancer, "nat", netfilter.ServicesChain, netfilter.LoadBalancerChain, "dst,dst", ""},
		{SetLoadBalancerLocal, "nat", netfilter.LoadBalancerChain, "RETURN", "dst,dst", ""},
		{SetNodePortLocalTCP, "nat", netfilter.IPVSNodePortChain, "RETURN", "dst", "tcp"},
		{SetNodePortTCP, "nat", netfilter.IPVSNodePortChain, netfilter.MarkMasqChain, "dst", "tcp"},
		{SetNodePortLocalUDP, "nat", netfilter.IPVSNodePortChain, "RETURN", "dst", "udp"},
		{SetNodePortUDP, "nat", netfilter.IPVSNodePortChain, netfilter.MarkMasqChain, "dst", "udp"},
		{SetNodePortLocalSCTP, "nat", netfilter.IPVSNodePortChain, "RETURN", "dst,dst", "sctp"},
		{SetNodePortSCTP, "nat", netfilter.IPVSNodePortChain, netfilter.MarkMasqChain, "dst,dst", "sctp"},
		{SetLoadBalancerFW, "filter", netfilter.ProxyFirewallChain, netfilter.SourceRangesFirewallChain, "dst,dst", ""},
		{SetLoadBalancerSourceNet, "filter", netfilter.SourceRangesFirewallChain, "RETURN", "dst,dst,src", ""},
		{SetLoadBalancerSourceIP, "filter", netfilter.SourceRangesFirewallChain, "RETURN", "dst,dst,src", ""},
	}
}

// ruleWriter builds rule lines; names maps upstream set names to the
// family's, comments to their quoted comment.
type ruleWriter struct {
	empty    func(set string) bool
	opts     RulesOptions
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

// RenderRules is a pure function from the desired sets to upstream's
// writeIptablesRules output, in upstream's order. Rules that match a set
// are written only when the set is not empty, except the filter rules
// upstream always writes.
func RenderRules(want *DesiredSets, opts RulesOptions) *Rules {
	return renderRules(want.Family, want.Empty, want.NoAccess, opts)
}

// renderRules is RenderRules over what the rules depend on: which sets are
// empty (by upstream IPv4 name) and the VIPs the node may not reach.
func renderRules(family v1.IPFamily, empty func(set string) bool, noAccess []LBNoNodeAccess, opts RulesOptions) *Rules {
	w := &ruleWriter{empty: empty, opts: opts, names: map[string]string{}, comments: map[string]string{}}
	bases := SetSpecs(v1.IPv4Protocol)
	for i, spec := range SetSpecs(family) {
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
	for _, e := range noAccess {
		w.filter("-A", netfilter.IPVSOutFilterChain, "-s", e.VIP.String(), "-m ipvs --vaddr", e.VIP.String(),
			"--vproto", e.Protocol, "--vport", strconv.Itoa(int(e.Port)), "-j", "DROP")
	}
	for _, set := range []string{SetClusterIP, SetLoadBalancer} {
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
	if w.empty(SetClusterIP) {
		return
	}
	head := []string{"-A", netfilter.ServicesChain, w.comment(SetClusterIP), w.matchSet(SetClusterIP)}
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
	for _, set := range []string{SetExternalIP, SetExternalIPLocal} {
		if w.empty(set) {
			continue
		}
		head := []string{"-A", netfilter.ServicesChain, w.comment(set), w.matchSet(set), "dst,dst"}
		if set == SetExternalIP {
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
	w.filter("-A", netfilter.IPVSNodePortChain, w.comment(SetHealthCheckNodePort), w.matchSet(SetHealthCheckNodePort), "dst", "-j", "ACCEPT")
	for _, set := range []string{SetLoadBalancer, SetClusterIP, SetExternalIP, SetExternalIPLocal} {
		w.filter("-A", netfilter.IPVSFilterChain, w.matchSet(set), "dst,dst", "-j", "RETURN")
	}
	w.filter("-A", netfilter.IPVSFilterChain, w.matchSet(SetHealthCheckNodePort), "dst", "-j", "RETURN")
	w.filter("-A", netfilter.IPVSFilterChain, "-m conntrack --ctstate NEW", w.matchSet(SetIPVSIPs), "dst", "-j", "REJECT")
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
