package nftables

import (
	"maps"
	"slices"
	"time"

	"github.com/kproxy/kproxy/nftables/nftnl"
	"github.com/kproxy/kproxy/proxier"
)

// kernelObjects are the per-service chains and affinity sets the table
// holds before a full sync: listed from the kernel (once per full sync),
// or, when listing fails, what the mirror knows.
type kernelObjects struct {
	chains []string
	sets   []string
	// digests, when known, are the kernel's chains' contents (chains
	// holding rules): a full sync does not rewrite a chain that already
	// holds what it renders.
	digests map[string]nftnl.Digest
}

// holds reports whether the kernel's chain c already holds c's rules.
func (k *kernelObjects) holds(c *chain, f nftnl.Family) bool {
	have, ok := k.digests[c.name]
	if !ok {
		return false
	}
	want, err := nftnl.RulesDigest(f, TableName, c.rules)
	return err == nil && want == have
}

// fullPlan is a full sync: the mirror it leaves, the per-service changes
// (chains and affinity sets) in chunks that never split a service port,
// and the tail (every element, stale chains and affinity sets).
type fullPlan struct {
	next   *mirror
	chunks []changes
	tail   changes
}

// planFull renders every service port of snap into a fresh mirror and
// returns it with the changes that write all of it, the per-service part
// in chunks of about chunkChains chains (one chunk when chunkChains ≤ 0).
// Service chains and affinity sets in the kernel that nothing renders any
// more are flushed (the chains, deleted a sync later) or deleted (the sets).
func planFull(ctx *renderContext, snap *proxier.Snapshot, prev *mirror, kernel kernelObjects, now time.Time,
	chunkChains int) *fullPlan {
	next := newMirror()
	forEachService(snap, func(name proxier.ServicePortName, sp *proxier.ServicePort, eps *proxier.EndpointSet) {
		next.addService(name, render(ctx, name, sp, eps))
	})
	names := slices.SortedFunc(maps.Keys(next.services), proxier.ServicePortName.Compare)
	plan := &fullPlan{next: next, chunks: []changes{{}}}
	chains := make(map[string]bool, len(names)*2)
	sets := map[string]bool{}
	recreate := changedTimeouts(prev, next, names)
	if len(recreate) > 0 {
		// The chains naming a re-created set must be flushed before it goes.
		kernel.digests = nil
	}
	for _, n := range names {
		r := next.services[n]
		write := r.chains
		if kernel.digests != nil {
			write = slices.DeleteFunc(slices.Clone(r.chains), func(c chain) bool { return kernel.holds(&c, ctx.fam.nl) })
		}
		cur := &plan.chunks[len(plan.chunks)-1]
		if chunkChains > 0 && len(cur.writeChain) > 0 && len(cur.writeChain)+len(write) > chunkChains {
			plan.chunks = append(plan.chunks, changes{})
			cur = &plan.chunks[len(plan.chunks)-1]
		}
		cur.addSets = append(cur.addSets, r.sets...)
		cur.writeChain = append(cur.writeChain, write...)
		for i := range r.chains {
			chains[r.chains[i].name] = true
		}
		for _, s := range r.sets {
			sets[s.name] = true
		}
	}
	plan.assignRecreatedSets(recreate)
	plan.tail.elemAdd = allElements(next)
	for _, c := range sortedUnique(kernel.chains) {
		if IsServiceChainName(c) && !chains[c] {
			plan.tail.flushChain = append(plan.tail.flushChain, c)
			next.stale[c] = now
		}
	}
	for _, s := range sortedUnique(kernel.sets) {
		if isAffinitySetName(s) && !sets[s] {
			plan.tail.deleteSets = append(plan.tail.deleteSets, s)
		}
	}
	return plan
}

// assignRecreatedSets puts each affinity set whose timeout changed into
// the chunk that adds it. A set may still be named by a stale chain, which
// only the tail flushes: then the plan goes back to one chunk, so that the
// flush comes before the delete in one transaction.
func (p *fullPlan) assignRecreatedSets(recreate []string) {
	if len(recreate) == 0 {
		return
	}
	if len(p.chunks) > 1 {
		p.chunks = []changes{mergeChunks(p.chunks)}
	}
	p.chunks[0].recreateSets = recreate
}

func mergeChunks(chunks []changes) changes {
	var all changes
	for i := range chunks {
		all.addSets = append(all.addSets, chunks[i].addSets...)
		all.writeChain = append(all.writeChain, chunks[i].writeChain...)
		all.insertChain = append(all.insertChain, chunks[i].insertChain...)
	}
	return all
}

// single is the whole plan as one set of changes (one transaction): the
// chunk's and the tail's fields are disjoint.
func (p *fullPlan) single() changes {
	ch := mergeChunks(p.chunks)
	for i := range p.chunks {
		ch.recreateSets = append(ch.recreateSets, p.chunks[i].recreateSets...)
	}
	ch.flushElements, ch.flushChain, ch.deleteSets, ch.elemAdd = p.tail.flushElements, p.tail.flushChain, p.tail.deleteSets, p.tail.elemAdd
	return ch
}

// allElements is every element key of m with its winning value, in a fixed order.
func allElements(m *mirror) []elemOp {
	var out []elemOp
	for c := container(0); c < numContainers; c++ {
		keys := slices.Sorted(maps.Keys(m.elems[c]))
		for _, k := range keys {
			v, _ := m.elems[c][k].winner()
			out = append(out, elemOp{c: c, key: k, val: v})
		}
	}
	return out
}

// knownObjects is what the mirror knows the kernel holds, for a full sync
// that could not list the table.
func (m *mirror) knownObjects() kernelObjects {
	var k kernelObjects
	for _, r := range m.services {
		for i := range r.chains {
			k.chains = append(k.chains, r.chains[i].name)
		}
		for _, s := range r.sets {
			k.sets = append(k.sets, s.name)
		}
	}
	for c := range m.stale {
		k.chains = append(k.chains, c)
	}
	return k
}

func sortedUnique(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// changedTimeouts are the affinity sets of next (its service ports in the
// order of names) whose timeout differs from the one prev (this process's
// last successful sync) wrote. After a restart the kernel's timeouts are
// trusted.
func changedTimeouts(prev, next *mirror, names []proxier.ServicePortName) []string {
	had := map[string]int32{}
	for _, r := range prev.services {
		for _, s := range r.sets {
			had[s.name] = s.timeout
		}
	}
	var out []string
	for _, n := range names {
		for _, s := range next.services[n].sets {
			if t, ok := had[s.name]; ok && t != s.timeout {
				out = append(out, s.name)
			}
		}
	}
	return out
}
