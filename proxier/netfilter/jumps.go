package netfilter

import (
	"fmt"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// JumpRule is one rule kube-proxy keeps at the top of a built-in chain
// (upstream's iptablesJumpChains), jumping to one of its chains.
type JumpRule struct {
	Table, From, To string
	// NewOnly adds "-m conntrack --ctstate NEW" before the comment.
	NewOnly bool
	// Comment is "" for the kubelet duplicates (KUBE-FIREWALL).
	Comment string
}

// IPTablesJumpRules are iptables mode's jumps: upstream's
// iptablesJumpChains followed by its duplicates of kubelet's KUBE-FIREWALL
// jumps, in the order upstream prepends them.
func IPTablesJumpRules() []JumpRule {
	return append(kubeProxyJumpRules(),
		JumpRule{Table: "filter", From: "INPUT", To: FirewallChain},
		JumpRule{Table: "filter", From: "OUTPUT", To: FirewallChain})
}

// kubeProxyJumpRules is upstream's iptablesJumpChains of iptables mode
// (behaviour reference 9.1).
func kubeProxyJumpRules() []JumpRule {
	const (
		external = "kubernetes externally-visible service portals"
		portals  = "kubernetes service portals"
		firewall = "kubernetes load balancer firewall"
	)
	return []JumpRule{
		{"filter", "INPUT", ExternalServicesChain, true, external},
		{"filter", "FORWARD", ExternalServicesChain, true, external},
		{"filter", "INPUT", NodePortsChain, false, "kubernetes health check service ports"},
		{"filter", "FORWARD", ServicesChain, true, portals},
		{"filter", "OUTPUT", ServicesChain, true, portals},
		{"filter", "FORWARD", ForwardChain, false, "kubernetes forwarding rules"},
		{"filter", "INPUT", ProxyFirewallChain, true, firewall},
		{"filter", "OUTPUT", ProxyFirewallChain, true, firewall},
		{"filter", "FORWARD", ProxyFirewallChain, true, firewall},
		{"nat", "OUTPUT", ServicesChain, false, portals},
		{"nat", "PREROUTING", ServicesChain, false, portals},
		{"nat", "POSTROUTING", PostroutingChain, false, "kubernetes postrouting rules"},
	}
}

// IPVSJumpRules are upstream's iptablesJumpChain of IPVS mode.
func IPVSJumpRules() []JumpRule {
	const portals, firewall, filter = "kubernetes service portals", "kube-proxy firewall rules", "kubernetes ipvs access filter"
	return []JumpRule{
		{Table: "nat", From: "OUTPUT", To: ServicesChain, Comment: portals},
		{Table: "nat", From: "PREROUTING", To: ServicesChain, Comment: portals},
		{Table: "nat", From: "POSTROUTING", To: PostroutingChain, Comment: "kubernetes postrouting rules"},
		{Table: "filter", From: "FORWARD", To: ForwardChain, Comment: "kubernetes forwarding rules"},
		{Table: "filter", From: "INPUT", To: IPVSNodePortChain, Comment: "kubernetes health check rules"},
		{Table: "filter", From: "INPUT", To: ProxyFirewallChain, Comment: firewall},
		{Table: "filter", From: "FORWARD", To: ProxyFirewallChain, Comment: firewall},
		{Table: "filter", From: "INPUT", To: IPVSFilterChain, Comment: filter},
		{Table: "filter", From: "OUTPUT", To: IPVSOutFilterChain, Comment: filter},
	}
}

// spec is the rule after its chain, as kube-proxy writes it and
// iptables-save prints it (the comments need quotes and no escapes).
func (j JumpRule) spec() string {
	var b strings.Builder
	if j.NewOnly {
		b.WriteString("-m conntrack --ctstate NEW ")
	}
	if j.Comment != "" {
		b.WriteString(`-m comment --comment "` + j.Comment + `" `)
	}
	b.WriteString("-j " + j.To)
	return b.String()
}

// InsertLine is the rule as an iptables-restore insertion at position 1.
func (j JumpRule) InsertLine() string { return "-I " + j.From + " 1 " + j.spec() }

// SaveLine is the rule as iptables-save prints it.
func (j JumpRule) SaveLine() string { return "-A " + j.From + " " + j.spec() }

// Args are the rule's arguments after "-A CHAIN", unquoted.
func (j JumpRule) Args() []string {
	var args []string
	if j.NewOnly {
		args = append(args, "-m", "conntrack", "--ctstate", "NEW")
	}
	if j.Comment != "" {
		args = append(args, "-m", "comment", "--comment", j.Comment)
	}
	return append(args, "-j", j.To)
}

// PresentIn reports whether the saved table holds the jump: a rule in From
// jumping to To whose line carries the comment (any such rule when the
// comment is empty, as kubelet writes its KUBE-FIREWALL jumps).
func (j JumpRule) PresentIn(t *ruleset.SavedTable) bool {
	for _, r := range t.Rules {
		if r.Chain != j.From || r.Target != j.To {
			continue
		}
		if j.Comment == "" || strings.Contains(r.Line, j.Comment) {
			return true
		}
	}
	return false
}

// WithKubeProxyJumps returns a copy of the tables with upstream's
// iptables-mode jump rules inserted at the top of the built-in chains, the
// way its full sync inserts them with "-I CHAIN 1", for every target chain
// that exists and is not jumped to from that built-in chain already. Tests
// use it to trace rules rendered without the jumps.
func WithKubeProxyJumps(tables map[string]*ruleset.Table, family v1.IPFamily) (map[string]*ruleset.Table, error) {
	out := make(map[string]*ruleset.Table, len(tables))
	for name, t := range tables {
		out[name] = t.Clone()
	}
	for _, j := range kubeProxyJumpRules() {
		t := out[j.Table]
		if t == nil || t.Chain(j.To) == nil || t.Chain(j.From) == nil {
			continue
		}
		from := t.Chain(j.From)
		if slices.ContainsFunc(from.Rules, func(r ruleset.Rule) bool { return r.TargetName() == j.To }) {
			continue
		}
		r, err := ruleset.ParseRule(j.Args(), family)
		if err != nil {
			return nil, fmt.Errorf("jump %s -> %s: %w", j.From, j.To, err)
		}
		from.Rules = slices.Insert(from.Rules, 0, r)
	}
	return out, nil
}
