package nftables

import (
	"context"
	"slices"

	"k8s.io/klog/v2"

	"github.com/kproxy/kproxy/nftables/nftnl"
)

// A chain whose rules look packets up in an anonymous map (a service
// chain's numgen map or vmap) is not rewritten by flushing it when it can
// be helped. Deleting such a rule marks its map's elements inactive in the
// new generation as the transaction commits, while a packet that began on
// the old rules may still look the map up: the lookup misses, the packet
// falls through the chain un-NATed, and a ClusterIP connection is
// rejected by the cluster-ips check ("connection refused"; measured: 8 of
// 600 rewrites of one chain under back-to-back connections, and about one
// connection in 150 endpoint changes at 10000 services, in upstream's
// flush-and-rewrite as in kproxy's before this). So a sync inserts the
// new rules ahead of the old ones in its transaction, and a later
// transaction deletes the old rules by handle: a packet on either
// generation then finds live elements, and stops at the first map rule it
// reaches, which always matches.

// insertion is a chain's new rules, inserted before the rule with handle
// before (the chain's first).
type insertion struct {
	chain  chain
	before uint64
}

// ruleRef is a rule of a chain, by handle.
type ruleRef struct {
	chain  string
	handle uint64
}

// RuleLister lists the handles of a chain's rules (nftnl.Conn).
type RuleLister interface {
	RuleHandles(ctx context.Context, f nftnl.Family, table, chain string) ([]uint64, error)
}

// swappable reports whether chain old, rewritten as next, is to be
// swapped rather than flushed: old's rules look a map up, and next's last
// rule ends the chain for every packet that reaches it, so that old's
// rules behind it never run.
func swappable(old, next *chain) bool {
	return len(next.rules) > 0 && endsChain(next.rules[len(next.rules)-1]) &&
		slices.ContainsFunc(old.rules, nftnl.Rule.LooksUpMap)
}

// endsChain reports whether every packet that reaches r (in a service
// port's chain: of the port's protocol) leaves the chain there: an
// unconditional goto, drop, DNAT, or numgen map over every value.
func endsChain(r nftnl.Rule) bool {
	if r.Match != nil {
		return false
	}
	switch r.Stmt.(type) {
	case nftnl.Goto, nftnl.Drop, nftnl.DNAT, nftnl.NumgenDNAT, nftnl.NumgenGoto:
		return true
	}
	return false
}

// planSwaps turns the plan's swap chains into insertions, listing each
// chain's rule handles over netlink, and returns the second transaction:
// the old rules' deletion, then the affinity sets they may name. A chain
// whose handles cannot be listed (no netlink connection, an error, no
// rules) is written as usual, flushed. Nil when nothing is swapped.
func (p *Proxier) planSwaps(ctx context.Context, plan *partialPlan) *changes {
	lister, _ := p.netlink.(RuleLister)
	var after changes
	for i := range plan.swap {
		c := &plan.swap[i]
		before, old, ok := p.oldRules(ctx, lister, c.name)
		if !ok {
			plan.writeChain = append(plan.writeChain, *c)
			continue
		}
		plan.insertChain = append(plan.insertChain, insertion{chain: *c, before: before})
		after.deleteRules = append(after.deleteRules, old...)
	}
	if len(after.deleteRules) == 0 {
		return nil
	}
	after.deleteSets, plan.deleteSets = plan.deleteSets, nil
	return &after
}

// oldRules lists chain's rules for a swap: the handle of the first, which
// the new rules go before, and all of them, to delete. ok is false when
// they cannot be listed (no lister, an error, no rules): the chain is then
// flushed and refilled.
func (p *Proxier) oldRules(ctx context.Context, lister RuleLister, chain string) (before uint64, old []ruleRef, ok bool) {
	if lister == nil {
		return 0, nil, false
	}
	handles, err := lister.RuleHandles(ctx, p.table.fam.nl, TableName, chain)
	if err != nil {
		klog.FromContext(ctx).V(2).Info("Listing an nftables chain's rules failed, flushing it instead", "chain", chain, "err", err)
	}
	if len(handles) == 0 {
		return 0, nil, false
	}
	for _, h := range handles {
		old = append(old, ruleRef{chain: chain, handle: h})
	}
	return handles[0], old, true
}

// maxFullSyncSwaps bounds the chains one full sync swaps: each costs a
// listing, for which the kernel walks the table's chains. A full sync that
// rewrites more (the first over another layout, say) flushes them.
const maxFullSyncSwaps = 100

// planFullSwaps swaps the chains a full sync rewrites that the kernel
// already holds with rules (a restart after endpoints changed, a resync
// that finds a chain changed behind kproxy's back), as planSwaps does for
// a partial sync, and returns their old rules' deletion, to run once every
// chunk has (nil when nothing is swapped). Only with digests of the
// kernel's chains, which tell which chains it holds; they do not tell
// whether the old rules look a map up, and swapping a chain whose rules
// do not costs a deletion per rule and changes nothing else.
func (p *Proxier) planFullSwaps(ctx context.Context, plan *fullPlan, kernel kernelObjects) *changes {
	lister, ok := p.netlink.(RuleLister)
	if !ok || kernel.digests == nil {
		return nil
	}
	var candidates []*chain
	for i := range plan.chunks {
		for j := range plan.chunks[i].writeChain {
			c := &plan.chunks[i].writeChain[j]
			if _, held := kernel.digests[c.name]; held && len(c.rules) > 0 && endsChain(c.rules[len(c.rules)-1]) {
				candidates = append(candidates, c)
			}
		}
	}
	if len(candidates) == 0 || len(candidates) > maxFullSyncSwaps {
		return nil
	}
	var after changes
	swapped := map[string]uint64{}
	for _, c := range candidates {
		if before, old, ok := p.oldRules(ctx, lister, c.name); ok {
			swapped[c.name] = before
			after.deleteRules = append(after.deleteRules, old...)
		}
	}
	for i := range plan.chunks {
		ch := &plan.chunks[i]
		for _, c := range ch.writeChain {
			if before, ok := swapped[c.name]; ok {
				ch.insertChain = append(ch.insertChain, insertion{chain: c, before: before})
			}
		}
		ch.writeChain = slices.DeleteFunc(ch.writeChain, func(c chain) bool { _, ok := swapped[c.name]; return ok })
	}
	if len(after.deleteRules) == 0 {
		return nil
	}
	return &after
}
