package iptables

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// Reading the kernel state, the first kernel step of a sync.
//
// A partial sync reads nothing: the memory of the last successful sync is
// its kernelState (plus, when a service port went away and the nat table is
// small, a best-effort iptables-save of nat to find chains memory does not
// know). A full sync reads nat and filter, and never depends on
// iptables-save succeeding: iptables-nft 1.8.9 builds its chain cache in a
// name-sorted linked list, so iptables-save (and "iptables -S", "-L") of a
// nat table with 110k chains (10k services × 10 endpoints) runs ~3 minutes
// and then dies with SIGSEGV. A full sync that required that Save would
// fail, every following sync would be full again, and the rules would
// freeze. Instead:
//   - the Save is not even tried when the table is known or expected to be
//     that large (saveMaxChains);
//   - a failed or skipped Save falls back to the memory or, after a restart
//     (or when the memory is not trusted), to what it can list chain by
//     chain ("iptables -S CHAIN" fetches one chain, ~10 ms at 10k
//     services): the built-in chains holding the jump rules, and the
//     top-level nat chains whose targets reveal stale service chains.
// Per-service chains a restart cannot see are rewritten (declared) in full,
// and stale endpoint chains of still-existing services are left for a later
// full sync whose Save succeeds: they are unreferenced and harmless.
//
// The memory is not trusted after a sync that relied on it as its kernel
// view failed (it may be what is wrong), nor after ForgetKernelState (the
// tamper monitor saw someone else change the tables); a successful sync
// restores the trust. A partial sync cannot run without a trusted memory
// of the same large-cluster mode: the sync is then widened to a full one.

// saveMaxChains is the nat chain count above which a full iptables-save is
// not attempted (measured: 110k chains never complete).
const saveMaxChains = 20000

// maxStaleListings bounds the chains listed to find stale chains after a
// restart, so a huge leftover never makes the sync slow; the rest is found
// by a later full sync.
const maxStaleListings = 2000

// kernelReader is the read step and its state: the memory, its trust, and
// the chains failed syncs meant to delete.
type kernelReader struct {
	restorer netfilter.Restorer
	seed     maphash.Seed
	// memory is nil before the first successful sync.
	memory   *memory
	distrust bool
	// forget is set by ForgetKernelState (from the tamper monitor's
	// goroutine); the next sync turns it into distrust.
	forget atomic.Bool
	// orphans are per-service chains that renders of failed syncs dropped
	// (Rendering.removed): the renderer forgets them, the kernel may not.
	orphans []string
}

// readRequest is what the read step needs to know of the sync.
type readRequest struct {
	full bool
	snap *proxier.Snapshot
	// endpoints counts the snapshot's endpoints (expected table size).
	endpoints int
}

// startSync turns a pending ForgetKernelState into distrust; every sync
// calls it first.
func (r *kernelReader) startSync() {
	if r.forget.Swap(false) {
		r.distrust = true
	}
}

// trusted reports whether the memory may stand in for the kernel.
func (r *kernelReader) trusted() bool {
	return r.memory != nil && !r.distrust
}

// canDiffPartial reports whether a partial sync in the given large-cluster
// mode can be diffed against the memory.
func (r *kernelReader) canDiffPartial(large bool) bool {
	return r.trusted() && r.memory.large == large
}

// read returns what the kernel holds for this sync.
func (r *kernelReader) read(ctx context.Context, req readRequest) (*kernelState, error) {
	if !req.full {
		return r.readPartial(ctx, req), nil
	}
	var saveErr error
	if r.expectedNatChains(req) <= saveMaxChains {
		ks, err := r.readSaves(ctx)
		if err == nil {
			return ks, nil
		}
		saveErr = err
	}
	return r.readWithoutSave(ctx, saveErr)
}

// newState starts a kernelState with the remembered chain counts, the
// lower bound of every table's size, and the orphans.
func (r *kernelReader) newState() *kernelState {
	ks := &kernelState{tables: map[string]*kernelTable{}, stale: slices.Clone(r.orphans)}
	if r.memory != nil {
		for name, chains := range r.memory.tables {
			ks.tables[name] = &kernelTable{count: len(chains)}
		}
	}
	return ks
}

// standIn makes the memory stand in for chains that are not read.
func (r *kernelReader) standIn(ks *kernelState) {
	for name, chains := range r.memory.tables {
		ks.tableFor(name).remembered = chains
	}
}

// readPartial is the memory, every chain and its rules standing in.
func (r *kernelReader) readPartial(ctx context.Context, req readRequest) *kernelState {
	ks := r.newState()
	r.standIn(ks)
	ks.rememberedRules = true
	if !r.memory.removedService(req.snap) || r.memory.chainCount("nat") > saveMaxChains {
		return ks
	}
	// Best effort: the chains written last time are known anyway.
	if nat, err := saveTable(ctx, r.restorer, "nat"); err == nil {
		t := ks.tableFor("nat")
		t.save, t.count = nat.Text, len(nat.Chains)
		ks.stale = append(ks.stale, serviceChains(nat)...)
	}
	return ks
}

// expectedNatChains is what the kernel's nat table probably holds: the
// remembered chains, or after a restart what this snapshot will need
// (the previous process most likely left a similar table).
func (r *kernelReader) expectedNatChains(req readRequest) int {
	if n := r.memory.chainCount("nat"); n > 0 && r.trusted() {
		return n
	}
	return 2*req.snap.Len() + req.endpoints
}

// readSaves reads nat and filter whole.
func (r *kernelReader) readSaves(ctx context.Context) (*kernelState, error) {
	nat, err := saveTable(ctx, r.restorer, "nat")
	if err != nil {
		return nil, err
	}
	filter, err := saveTable(ctx, r.restorer, "filter")
	if err != nil {
		return nil, err
	}
	ks := r.newState()
	r.addRead(ks, "nat", nat, true)
	r.addRead(ks, "filter", filter, true)
	ks.missingJumps = missingJumps(nat, filter)
	ks.stale = append(ks.stale, serviceChains(nat)...)
	return ks, nil
}

// readWithoutSave learns the kernel state from memory and per-chain listings.
func (r *kernelReader) readWithoutSave(ctx context.Context, saveErr error) (*kernelState, error) {
	lister, ok := r.restorer.(netfilter.ChainLister)
	if !ok {
		if !r.trusted() {
			return nil, errors.Join(errors.New("cannot read the kernel's tables"), saveErr)
		}
		// Jump rules were checked by the sync that built the memory.
		ks := r.newState()
		r.standIn(ks)
		ks.memoryStandsIn = true
		return ks, nil
	}
	nat, err := listChains(ctx, lister, "nat", jumpChains("nat"))
	if err != nil {
		return nil, err
	}
	filter, err := listChains(ctx, lister, "filter", jumpChains("filter"))
	if err != nil {
		return nil, err
	}
	ks := r.newState()
	ks.missingJumps = missingJumps(nat, filter)
	r.addRead(ks, "filter", filter, false)
	// A missing canary means someone flushed the tables: memory is void.
	if r.trusted() && nat.HasChain(netfilter.CanaryChain) {
		r.standIn(ks)
		ks.memoryStandsIn = true
		r.addRead(ks, "nat", nat, false)
		return ks, nil
	}
	// The stale chains nat's top-level chains lead to are listed once the
	// rendering says which chains are needed (readStale).
	ks.unwalked, ks.lister = nat, lister
	return ks, nil
}

// readStale completes a kernelState built from listings alone: it walks,
// from the listed top-level nat chains, the per-service chains the
// rendering does not need (findStaleChains). Other states are complete.
func (r *kernelReader) readStale(ctx context.Context, ks *kernelState, g *Rendering) error {
	nat := ks.unwalked
	if nat == nil {
		return nil
	}
	if err := findStaleChains(ctx, ks.lister, nat, g.view().active); err != nil {
		return err
	}
	ks.unwalked, ks.lister = nil, nil
	r.addRead(ks, "nat", nat, false)
	ks.stale = append(ks.stale, serviceChains(nat)...)
	return nil
}

// addRead records a table read now: whole (a Save) or some listed chains.
func (r *kernelReader) addRead(ks *kernelState, name string, saved *ruleset.SavedTable, whole bool) {
	t := ks.tableFor(name)
	t.listed, t.whole = savedRulesHashes(saved, r.seed), whole
	if whole {
		t.save, t.count = saved.Text, len(saved.Chains)
		return
	}
	t.count = max(len(saved.Chains), r.memory.chainCount(name))
	for _, rule := range saved.Rules {
		if rule.Chain == netfilter.ServicesChain {
			t.servicesRules++
		}
	}
}

// failed keeps the memory true after a sync failed past its render (g):
// the chains the render dropped are still in the kernel, and a memory that
// stood in for the kernel may be what is wrong.
func (r *kernelReader) failed(g *Rendering, ks *kernelState) {
	r.orphans = append(r.orphans, g.view().removed...)
	if ks.memoryStandsIn {
		r.distrust = true
	}
}

// commit makes what a successful sync wrote the memory.
func (r *kernelReader) commit(ch *changes, snap *proxier.Snapshot, large bool) {
	r.memory = r.memory.committed(ch, snap, large, r.seed)
	r.orphans = nil
	r.distrust = false
}

// missingJumps are the jump rules the read tables lack; a table not read
// (nil) lacks none, as far as anyone knows.
func missingJumps(nat, filter *ruleset.SavedTable) []missingJump {
	var out []missingJump
	for _, j := range netfilter.IPTablesJumpRules() {
		saved := filter
		if j.Table == "nat" {
			saved = nat
		}
		if saved == nil || j.PresentIn(saved) {
			continue
		}
		out = append(out, missingJump{rule: j, targetExists: saved.HasChain(j.To)})
	}
	return out
}

// serviceChains are the per-service chains of a read nat table.
func serviceChains(nat *ruleset.SavedTable) []string {
	var out []string
	for c := range nat.Chains {
		if netfilter.IsServiceChainName(c) {
			out = append(out, c)
		}
	}
	return out
}

// savedRulesHashes hashes every chain's rules, as iptables-save prints
// them after "-A CHAIN ", one line each; a chain without rules hashes as
// no lines. The diff compares these with its rendering's save form.
func savedRulesHashes(t *ruleset.SavedTable, seed maphash.Seed) map[string]uint64 {
	byChain := make(map[string]*maphash.Hash, len(t.Chains))
	for c := range t.Chains {
		h := &maphash.Hash{}
		h.SetSeed(seed)
		byChain[c] = h
	}
	for _, rule := range t.Rules {
		h := byChain[rule.Chain]
		if h == nil {
			continue
		}
		args := strings.TrimPrefix(rule.Line, "-A "+rule.Chain)
		h.WriteString(strings.TrimPrefix(args, " "))
		h.WriteByte('\n')
	}
	out := make(map[string]uint64, len(byChain))
	for c, h := range byChain {
		out[c] = h.Sum64()
	}
	return out
}

func saveTable(ctx context.Context, r netfilter.Restorer, table string) (*ruleset.SavedTable, error) {
	data, err := r.Save(ctx, table)
	if err != nil {
		return nil, fmt.Errorf("read %s table: %w", table, err)
	}
	return ruleset.ParseSave(data), nil
}
