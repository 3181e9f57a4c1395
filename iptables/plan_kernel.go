package iptables

import (
	"context"
	"errors"
	"fmt"

	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// Reading the kernel for a full sync without depending on iptables-save.
//
// iptables-nft 1.8.9 builds its chain cache in a name-sorted linked list, so
// iptables-save (and "iptables -S", "-L") of a nat table with 110k chains
// (10k services × 10 endpoints) runs ~3 minutes and then dies with SIGSEGV.
// A full sync that required that Save would fail, every following sync would
// be full again, and the rules would freeze. Instead:
//   - the Save is not even tried when the table is known or expected to be
//     that large (saveMaxChains);
//   - a failed or skipped Save falls back to what the proxier remembers from
//     its last successful sync (kernelMemory) or, after a restart, to what it
//     can list chain by chain ("iptables -S CHAIN" fetches one chain, ~10 ms
//     at 10k services): the built-in chains holding the jump rules, and the
//     top-level nat chains whose targets reveal stale service chains.
// Per-service chains a restart cannot see are rewritten (declared) in full,
// and stale endpoint chains of still-existing services are left for a later
// full sync whose Save succeeds: they are unreferenced and harmless.

// saveMaxChains is the nat chain count above which a full iptables-save is
// not attempted (measured: 110k chains never complete).
const saveMaxChains = 20000

// kernelSource says where a full sync's picture of the kernel came from.
type kernelSource int

const (
	// fromSave: iptables-save of nat and filter (complete).
	fromSave kernelSource = iota
	// fromMemory: the last successful sync's chains, plus per-chain listings.
	fromMemory
	// fromListing: per-chain listings only (restart without a usable Save).
	fromListing
)

// maxStaleListings bounds the chains listed to find stale chains after a
// restart, so a huge leftover never makes the sync slow; the rest is found
// by a later full sync.
const maxStaleListings = 2000

// readKernel fills pl.nat and pl.filter for a full sync.
func (p *Proxier) readKernel(ctx context.Context, pl *syncPlan) error {
	var saveErr error
	if p.expectedNatChains(pl) <= saveMaxChains {
		if saveErr = p.readSaves(ctx, pl); saveErr == nil {
			pl.source = fromSave
			return nil
		}
		pl.nat, pl.filter = nil, nil
	}
	return p.readWithoutSave(ctx, pl, saveErr)
}

func (p *Proxier) readSaves(ctx context.Context, pl *syncPlan) error {
	var err error
	if pl.nat, err = saveTable(ctx, p.restorer, "nat"); err != nil {
		return err
	}
	pl.filter, err = saveTable(ctx, p.restorer, "filter")
	return err
}

// expectedNatChains is what the kernel's nat table probably holds: the
// remembered chains, or after a restart what this snapshot will need
// (the previous process most likely left a similar table).
func (p *Proxier) expectedNatChains(pl *syncPlan) int {
	if n := len(p.chains["nat"]); n > 0 && !p.distrustMemory {
		return n
	}
	return 2*len(pl.snap.Services) + pl.endpoints
}

// readWithoutSave learns the kernel state from memory and per-chain listings.
func (p *Proxier) readWithoutSave(ctx context.Context, pl *syncPlan, saveErr error) error {
	lister, ok := p.restorer.(netfilter.ChainLister)
	if !ok {
		if p.hasMemory() {
			// Jump rules were checked by the sync that built the memory.
			pl.source = fromMemory
			return nil
		}
		return errors.Join(errors.New("cannot read the kernel's tables"), saveErr)
	}
	var err error
	if pl.nat, err = listChains(ctx, lister, "nat", jumpChains("nat")); err != nil {
		return err
	}
	if pl.filter, err = listChains(ctx, lister, "filter", jumpChains("filter")); err != nil {
		return err
	}
	pl.partial = true
	// A missing canary means someone flushed the tables: memory is void.
	if p.hasMemory() && pl.nat.HasChain(netfilter.CanaryChain) {
		pl.source = fromMemory
		return nil
	}
	pl.source = fromListing
	pl.lister = lister
	return nil
}

func (p *Proxier) hasMemory() bool {
	return p.synced && !p.distrustMemory
}

// jumpChains are the chains to list in a table: the built-in chains holding
// jump rules, their targets (KUBE-FIREWALL must not be flushed if it
// exists), the top-level chains whose targets reveal service chains, and
// the canary.
func jumpChains(table string) []string {
	var out []string
	add := func(c string) {
		if !containsName(out, c) {
			out = append(out, c)
		}
	}
	for _, j := range netfilter.IPTablesJumpRules() {
		if j.Table == table {
			add(j.From)
			add(j.To)
		}
	}
	if table == "nat" {
		add(netfilter.NodePortsChain)
		add(netfilter.CanaryChain)
	}
	return out
}

// listChains reads the named chains into a partial SavedTable; chains that
// do not exist are absent from it.
func listChains(ctx context.Context, l netfilter.ChainLister, table string, chains []string) (*ruleset.SavedTable, error) {
	t := ruleset.NewSavedTable()
	for _, c := range chains {
		if err := listInto(ctx, l, table, c, t); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func listInto(ctx context.Context, l netfilter.ChainLister, table, chain string, t *ruleset.SavedTable) error {
	data, err := l.ListChain(ctx, table, chain)
	if err != nil {
		return fmt.Errorf("list %s chain %s: %w", table, chain, err)
	}
	t.Add(data)
	return nil
}

// findStaleChains walks, from the listed top-level nat chains, the service
// chains they jump to that the snapshot no longer needs, listing each so its
// own targets (down to KUBE-SEP) are found too. Active chains are never
// listed, so the walk is proportional to what went away, not to the cluster.
func findStaleChains(ctx context.Context, l netfilter.ChainLister, nat *ruleset.SavedTable, active map[string]*portState) error {
	listed := 0
	for i := 0; i < len(nat.Rules) && listed < maxStaleListings; i++ {
		target := nat.Rules[i].Target
		if !netfilter.IsServiceChainName(target) || nat.HasChain(target) {
			continue
		}
		if _, ok := active[target]; ok {
			continue
		}
		if err := listInto(ctx, l, "nat", target, nat); err != nil {
			return err
		}
		listed++
	}
	return nil
}

// existingChains is the listing prefix's measure of a table's size: exact
// after a Save, remembered after a sync, and estimated from KUBE-SERVICES
// after a partial listing, so that "-S" (which prints the whole table) is
// never prefixed to a restore into a huge table.
func (p *Proxier) existingChains(pl *syncPlan, table string, declared int) int {
	saved := pl.savedTable(table)
	switch {
	case saved == nil:
		return len(p.chains[table])
	case !pl.partial:
		return len(saved.Chains)
	}
	services := 0
	for _, r := range saved.Rules {
		if r.Chain == netfilter.ServicesChain {
			services++
		}
	}
	perService := declared / max(1, len(pl.snap.Services))
	return max(len(saved.Chains), services*max(1, perService), len(p.chains[table]))
}
