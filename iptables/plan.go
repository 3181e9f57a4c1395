package iptables

import (
	"context"
	"fmt"
	"slices"

	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
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
	nat, filter *ruleset.SavedTable
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
	lister netfilter.ChainLister
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
	for _, j := range netfilter.IPTablesJumpRules() {
		saved := pl.filter
		if j.Table == "nat" {
			saved = pl.nat
		}
		if saved == nil || j.PresentIn(saved) {
			continue
		}
		t := g.table(j.Table)
		// KUBE-FIREWALL is kubelet's: create it if missing, never flush it.
		if !t.declares(j.To) && !saved.HasChain(j.To) {
			t.declare(j.To)
		}
		t.inserts = append(t.inserts, j.InsertLine())
	}
}

// addCanaries (re)creates the empty KUBE-PROXY-CANARY chains whose
// disappearance tells the monitor that someone flushed iptables.
func addCanaries(g *Rendering) {
	for _, t := range netfilter.CanaryTables() {
		g.table(t).declare(netfilter.CanaryChain)
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
		for c := range pl.nat.Chains {
			if _, active := g.active[c]; netfilter.IsServiceChainName(c) && !active {
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

func saveTable(ctx context.Context, r netfilter.Restorer, table string) (*ruleset.SavedTable, error) {
	data, err := r.Save(ctx, table)
	if err != nil {
		return nil, fmt.Errorf("read %s table: %w", table, err)
	}
	return ruleset.ParseSave(data), nil
}
