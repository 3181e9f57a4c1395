package iptables

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// syncPlan is the first step of a sync: full or partial, and what the kernel
// currently holds when that had to be read.
type syncPlan struct {
	full bool
	// snap is the caller's snapshot, copied with Full set when the proxier
	// decided on a full sync itself.
	snap *proxier.Snapshot
	// nat and filter are the parsed iptables-save output, nil when not read.
	nat, filter *savedTable
	// endpoints counts all endpoints of the snapshot; large is upstream's
	// large-cluster mode, decided from it.
	endpoints int
	large     bool
	// source tells how a full sync learned the kernel state; partial is set
	// when nat and filter hold only listed chains, not whole tables.
	source  kernelSource
	partial bool
	// lister, set with fromListing, finds stale chains once the rendering
	// says which chains are active.
	lister ChainLister
}

// plan decides the sync kind. A full sync reads nat and filter (stale chains,
// missing jump rules); a partial sync reads nat only when service ports went
// away, and otherwise relies on the chains the proxier wrote last time.
func (p *Proxier) plan(ctx context.Context, snap *proxier.Snapshot) (*syncPlan, error) {
	pl := &syncPlan{snap: snap}
	if p.kernelChanged.Swap(false) {
		p.needFull, p.distrustMemory = true, true
	}
	pl.endpoints = p.renderer.state.totalEndpoints(snap)
	pl.large = pl.endpoints > p.renderer.opts.LargeClusterEndpointsThreshold
	pl.full = snap.Full || p.needFull || pl.large != p.lastLarge
	if pl.full && !snap.Full {
		s := *snap
		s.Full = true
		pl.snap = &s
	}
	if pl.full {
		return pl, p.readKernel(ctx, pl)
	}
	if p.servicesShrank(snap) && len(p.chains["nat"]) <= saveMaxChains {
		// Best effort: the chains written last time are known anyway.
		pl.nat, _ = saveTable(ctx, p.restorer, "nat")
	}
	return pl, nil
}

func (p *Proxier) servicesShrank(snap *proxier.Snapshot) bool {
	for name := range p.services {
		if _, ok := snap.Services[name]; !ok {
			return true
		}
	}
	return false
}

// addJumpRules inserts, at the top of built-in chains, the jumps of upstream's
// iptablesJumpChains that the saved tables lack, so a sync never duplicates them.
func addJumpRules(g *Rendering, pl *syncPlan) {
	for _, j := range jumpRules() {
		saved := pl.filter
		if j.table == "nat" {
			saved = pl.nat
		}
		if saved == nil || j.presentIn(saved) {
			continue
		}
		t := g.table(j.table)
		// KUBE-FIREWALL is kubelet's: create it if missing, never flush it.
		if !t.declares(j.to) && !saved.hasChain(j.to) {
			t.declare(j.to)
		}
		t.inserts = append(t.inserts, j.restoreLine())
	}
}

// addCanaries (re)creates the empty KUBE-PROXY-CANARY chains whose
// disappearance tells the monitor that someone flushed iptables.
func addCanaries(g *Rendering) {
	for _, t := range canaryTables() {
		g.table(t).declare(CanaryChain)
	}
}

// addStaleChainDeletions flushes and deletes per-service nat chains that are
// no longer needed: those the renderer dropped (only changed or removed
// services can drop chains, so a partial sync never walks all chains), those
// dropped by earlier failed syncs, and those found by reading the kernel.
func addStaleChainDeletions(g *Rendering, pl *syncPlan, unsynced []string) int {
	stale := slices.Clone(g.removed)
	for _, c := range unsynced {
		if _, ok := g.active[c]; !ok {
			stale = append(stale, c)
		}
	}
	if pl.nat != nil {
		for c := range pl.nat.chains {
			if _, active := g.active[c]; IsServiceChainName(c) && !active {
				stale = append(stale, c)
			}
		}
	}
	slices.Sort(stale)
	stale = slices.Compact(stale)
	nat := g.table("nat")
	for _, c := range stale {
		nat.deleteChain(c)
	}
	return len(stale)
}

// jumpRule is one rule kube-proxy keeps at the top of a built-in chain.
type jumpRule struct {
	table, from, to string
	extra           []string // matches before the comment
	comment         string
}

// jumpRules is upstream's iptablesJumpChains followed by its kubelet
// duplicates, in the order upstream prepends them.
func jumpRules() []jumpRule {
	newOnly := []string{"-m", "conntrack", "--ctstate", "NEW"}
	return []jumpRule{
		{"filter", "INPUT", ExternalServicesChain, newOnly, "kubernetes externally-visible service portals"},
		{"filter", "FORWARD", ExternalServicesChain, newOnly, "kubernetes externally-visible service portals"},
		{"filter", "INPUT", NodePortsChain, nil, "kubernetes health check service ports"},
		{"filter", "FORWARD", ServicesChain, newOnly, "kubernetes service portals"},
		{"filter", "OUTPUT", ServicesChain, newOnly, "kubernetes service portals"},
		{"filter", "FORWARD", ForwardChain, nil, "kubernetes forwarding rules"},
		{"filter", "INPUT", ProxyFirewallChain, newOnly, "kubernetes load balancer firewall"},
		{"filter", "OUTPUT", ProxyFirewallChain, newOnly, "kubernetes load balancer firewall"},
		{"filter", "FORWARD", ProxyFirewallChain, newOnly, "kubernetes load balancer firewall"},
		{"nat", "OUTPUT", ServicesChain, nil, "kubernetes service portals"},
		{"nat", "PREROUTING", ServicesChain, nil, "kubernetes service portals"},
		{"nat", "POSTROUTING", PostroutingChain, nil, "kubernetes postrouting rules"},
		{"filter", "INPUT", FirewallChain, nil, ""},
		{"filter", "OUTPUT", FirewallChain, nil, ""},
	}
}

// restoreLine is the rule as an iptables-restore insertion at position 1.
func (j *jumpRule) restoreLine() string {
	var b strings.Builder
	b.WriteString("-I " + j.from + " 1")
	for _, a := range j.extra {
		b.WriteString(" " + a)
	}
	if j.comment != "" {
		b.WriteString(` -m comment --comment "` + j.comment + `"`)
	}
	b.WriteString(" -j " + j.to)
	return b.String()
}

// presentIn reports whether the saved table already holds the jump.
func (j *jumpRule) presentIn(t *savedTable) bool {
	for _, r := range t.rules {
		if r.chain != j.from || r.target != j.to {
			continue
		}
		if j.comment == "" || strings.Contains(r.line, j.comment) {
			return true
		}
	}
	return false
}

// savedTable is the part of iptables-save output the proxier needs.
type savedTable struct {
	chains   map[string]struct{}
	builtins map[string]struct{}
	rules    []savedRule
	// text is the iptables-save output it was parsed from ("" for
	// listings), which every name and rule above points into; it is
	// TableRollback's snapshot of the table.
	text string
}

type savedRule struct {
	line   string // "-A CHAIN ..." as saved
	chain  string
	target string // argument of -j or -g, "" if none
}

func (t *savedTable) hasChain(c string) bool {
	_, ok := t.chains[c]
	return ok
}

func saveTable(ctx context.Context, r Restorer, table string) (*savedTable, error) {
	data, err := r.Save(ctx, table)
	if err != nil {
		return nil, fmt.Errorf("read %s table: %w", table, err)
	}
	return parseSave(data), nil
}

// parseSave reads chain declarations and rules of one table's iptables-save output.
func parseSave(data []byte) *savedTable {
	t := &savedTable{chains: map[string]struct{}{}, builtins: map[string]struct{}{}}
	t.text = parseSaveInto(t, data)
	return t
}

// parseSaveInto adds the chains and rules of iptables-save output, or of
// "iptables -S CHAIN" output ("-N CHAIN", "-P CHAIN POLICY"), to t. The
// input is converted to a string once and every line and name is a
// substring of it, so a 30 MB save costs one copy, not one per line.
func parseSaveInto(t *savedTable, data []byte) (text string) {
	text = string(data)
	for line := range strings.Lines(text) {
		line = strings.TrimSuffix(line, "\n")
		switch {
		case strings.HasPrefix(line, ":"):
			name, rest, _ := strings.Cut(line[1:], " ")
			t.addChain(name, !strings.HasPrefix(rest, "-"))
		case strings.HasPrefix(line, "-N "), strings.HasPrefix(line, "-P "):
			name, _, _ := strings.Cut(line[3:], " ")
			t.addChain(name, line[1] == 'P')
		case strings.HasPrefix(line, "-A "):
			if r, ok := parseSavedRule(line); ok {
				t.rules = append(t.rules, r)
			}
		}
	}
	return text
}

func (t *savedTable) addChain(name string, builtin bool) {
	if name == "" {
		return
	}
	t.chains[name] = struct{}{}
	if builtin {
		t.builtins[name] = struct{}{}
	}
}

// parseSavedRule finds the chain and the -j/-g target of a saved rule. Only
// rules with a quoted comment need the quote-aware split.
func parseSavedRule(line string) (savedRule, bool) {
	if strings.Contains(line, "\"") {
		args := splitSaveArgs(line)
		if len(args) < 2 {
			return savedRule{}, false
		}
		return savedRule{line: line, chain: args[1], target: targetOf(args[2:])}, true
	}
	args := strings.Fields(line)
	if len(args) < 2 {
		return savedRule{}, false
	}
	// strings.Fields allocates only the slice; names stay substrings of line.
	return savedRule{line: line, chain: args[1], target: targetOf(args[2:])}, true
}

func targetOf(args []string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-j" || args[i] == "-g" {
			return args[i+1]
		}
	}
	return ""
}

// splitSaveArgs splits a saved rule as iptables-restore would read it back
// (iptables-save quotes comments with the escapes that tokenizer undoes),
// so a comment cannot look like "-j X". Nil when it cannot be split.
func splitSaveArgs(line string) []string {
	args, err := ruleset.SplitArgs(line)
	if err != nil {
		return nil
	}
	return args
}
