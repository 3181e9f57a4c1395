package nftables

import (
	"maps"
	"slices"
	"time"

	"github.com/kproxy/kproxy/nftables/nftnl"
	"github.com/kproxy/kproxy/proxier"
)

// changes are the per-service objects one transaction writes, in the
// order they must be written: affinity sets before the rules naming them,
// chains before the elements pointing at them, flushes of chains before
// the deletion of the sets their rules named.
type changes struct {
	// flushElements empties every set and map first (a full sync).
	flushElements bool
	// recreateSets are affinity sets whose timeout changed: deleted once
	// the chains naming them are flushed, then added again.
	recreateSets []string
	addSets      []affinitySet
	writeChain   []chain
	flushChain   []string
	deleteSets   []string
	// deleteChain are stale chains, deleted in a transaction of their own.
	deleteChain []string
	// insertChain are chains whose new rules go in ahead of their old
	// ones, which deleteRules delete in a later transaction (see swap.go).
	insertChain []insertion
	deleteRules []ruleRef
	elemDelete  []elemOp
	elemAdd     []elemOp
}

// elemOp is one element written or deleted.
type elemOp struct {
	c   container
	key string
	val elemValue
}

// partialPlan is a partial sync's changes and what the mirror becomes if
// they apply: the new renderings (nil for a removed service port) and the
// new contributions of every element key they touched.
type partialPlan struct {
	changes
	services map[proxier.ServicePortName]*rendered
	elems    [numContainers]map[string]contribs
	// revived are stale chains that are in use again.
	revived []string
	// swap are chains to rewrite without a flush, if their rules'
	// handles can be listed (see swap.go); else they are written.
	swap []chain
}

// planPartial diffs the changed service ports of snap against the mirror.
// Only their chains that differ are rewritten; only element keys whose
// kernel value changes are written.
func planPartial(ctx *renderContext, m *mirror, snap *proxier.Snapshot) *partialPlan {
	p := &partialPlan{services: make(map[proxier.ServicePortName]*rendered, len(snap.Changed))}
	for c := range p.elems {
		p.elems[c] = map[string]contribs{}
	}
	names := make([]proxier.ServicePortName, 0, len(snap.Changed))
	for n := range snap.Changed {
		names = append(names, n)
	}
	slices.SortFunc(names, proxier.ServicePortName.Compare)
	for _, name := range names {
		var next *rendered
		if sp, eps := lookupService(snap, name); sp != nil {
			next = render(ctx, name, sp, eps)
		}
		old := m.services[name]
		p.services[name] = next
		recreated := p.diffSets(old, next)
		p.diffChains(ctx.fam.nl, m, old, next, recreated)
		p.touchElements(m, name, old, next)
	}
	p.elementOps(m)
	return p
}

// diffChains rewrites next's chains that differ from old's (all of them
// when an affinity set they name is re-created) and flushes old's others.
func (p *partialPlan) diffChains(f nftnl.Family, m *mirror, old, next *rendered, rewriteAll bool) {
	oldChains := map[string]*chain{}
	if old != nil {
		for i := range old.chains {
			oldChains[old.chains[i].name] = &old.chains[i]
		}
	}
	if next != nil {
		for i := range next.chains {
			c := &next.chains[i]
			if _, stale := m.stale[c.name]; stale {
				p.revived = append(p.revived, c.name)
			}
			o := oldChains[c.name]
			delete(oldChains, c.name)
			switch {
			case o != nil && !rewriteAll && sameRules(o.rules, c.rules, f):
			case o != nil && !rewriteAll && swappable(o, c):
				p.swap = append(p.swap, *c)
			default:
				p.writeChain = append(p.writeChain, *c)
			}
		}
	}
	gone := make([]string, 0, len(oldChains))
	for name := range oldChains {
		gone = append(gone, name)
	}
	slices.Sort(gone)
	p.flushChain = append(p.flushChain, gone...)
}

// diffSets adds next's new affinity sets, re-creates those whose timeout
// changed (nft keeps an existing set's timeout) and deletes old's others.
// It reports whether a set is re-created.
func (p *partialPlan) diffSets(old, next *rendered) (recreated bool) {
	oldSets := map[string]int32{}
	if old != nil {
		for _, s := range old.sets {
			oldSets[s.name] = s.timeout
		}
	}
	if next != nil {
		for _, s := range next.sets {
			t, ok := oldSets[s.name]
			if ok && t != s.timeout {
				p.recreateSets = append(p.recreateSets, s.name)
				recreated = true
			}
			if !ok || t != s.timeout {
				p.addSets = append(p.addSets, s)
			}
			delete(oldSets, s.name)
		}
	}
	for name := range oldSets {
		p.deleteSets = append(p.deleteSets, name)
	}
	slices.Sort(p.deleteSets)
	return recreated
}

// touchElements replaces name's contributions (old) by its new ones.
func (p *partialPlan) touchElements(m *mirror, name proxier.ServicePortName, old, next *rendered) {
	get := func(c container, key string) contribs {
		if cs, ok := p.elems[c][key]; ok {
			return cs
		}
		return slices.Clone(m.elems[c][key])
	}
	if old != nil {
		for _, e := range old.elems {
			p.elems[e.c][e.key] = get(e.c, e.key).without(name)
		}
	}
	if next != nil {
		for _, e := range next.elems {
			p.elems[e.c][e.key] = append(get(e.c, e.key), contrib{name: name, val: e.val()})
		}
	}
}

// elementOps compares, for every touched key, the value the kernel holds
// with the new winner. A changed value is deleted and re-added (nft does
// not replace a map element's value in place).
func (p *partialPlan) elementOps(m *mirror) {
	for c := container(0); c < numContainers; c++ {
		keys := slices.Sorted(maps.Keys(p.elems[c]))
		for _, key := range keys {
			before, had := m.elems[c][key].winner()
			after, has := p.elems[c][key].winner()
			switch {
			case had && (!has || before != after):
				p.elemDelete = append(p.elemDelete, elemOp{c: c, key: key, val: before})
				if has {
					p.elemAdd = append(p.elemAdd, elemOp{c: c, key: key, val: after})
				}
			case !had && has:
				p.elemAdd = append(p.elemAdd, elemOp{c: c, key: key, val: after})
			}
		}
	}
}

// commit makes the plan the mirror's state, after its transaction applied.
func (p *partialPlan) commit(m *mirror, now time.Time) {
	for name, r := range p.services {
		if r == nil {
			delete(m.services, name)
		} else {
			m.services[name] = r
		}
	}
	for c := range p.elems {
		for key, cs := range p.elems[c] {
			if len(cs) == 0 {
				delete(m.elems[c], key)
			} else {
				m.elems[c][key] = cs
			}
		}
	}
	for _, name := range p.revived {
		delete(m.stale, name)
	}
	for _, name := range p.flushChain {
		m.stale[name] = now
	}
}
