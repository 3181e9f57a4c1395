package nftables

import (
	"maps"
	"slices"
	"time"

	"github.com/kproxy/kproxy/proxier"
)

// kernelObjects are the per-service chains and affinity sets the table
// holds before a full sync: listed from the kernel (once per full sync),
// or, when listing fails, what the mirror knows.
type kernelObjects struct {
	chains []string
	sets   []string
}

// planFull renders every service port of snap into a fresh mirror and
// returns it with the changes that write all of it. Service chains and
// affinity sets in the kernel that nothing renders any more are flushed
// (the chains, deleted a sync later) or deleted (the sets).
func planFull(ctx *renderContext, snap *proxier.Snapshot, prev *mirror, kernel kernelObjects, now time.Time) (*mirror, changes) {
	next := newMirror()
	forEachService(snap, func(name proxier.ServicePortName, sp *proxier.ServicePort, eps *proxier.EndpointSet) {
		next.addService(name, render(ctx, name, sp, eps))
	})
	names := make([]proxier.ServicePortName, 0, len(next.services))
	for n := range next.services {
		names = append(names, n)
	}
	slices.SortFunc(names, proxier.ServicePortName.Compare)
	var ch changes
	chains := make(map[string]bool, len(names)*2)
	sets := map[string]bool{}
	for _, n := range names {
		r := next.services[n]
		ch.addSets = append(ch.addSets, r.sets...)
		ch.writeChain = append(ch.writeChain, r.chains...)
		for i := range r.chains {
			chains[r.chains[i].name] = true
		}
		for _, s := range r.sets {
			sets[s.name] = true
		}
	}
	ch.recreateSets = changedTimeouts(prev, ch.addSets)
	ch.elemAdd = allElements(next)
	for _, c := range sortedUnique(kernel.chains) {
		if IsServiceChainName(c) && !chains[c] {
			ch.flushChain = append(ch.flushChain, c)
			next.stale[c] = now
		}
	}
	for _, s := range sortedUnique(kernel.sets) {
		if isAffinitySetName(s) && !sets[s] {
			ch.deleteSets = append(ch.deleteSets, s)
		}
	}
	return next, ch
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

// changedTimeouts are the sets of want whose timeout differs from the one
// prev (this process's last successful sync) wrote. After a restart the
// kernel's timeouts are trusted.
func changedTimeouts(prev *mirror, want []affinitySet) []string {
	had := map[string]int32{}
	for _, r := range prev.services {
		for _, s := range r.sets {
			had[s.name] = s.timeout
		}
	}
	var out []string
	for _, s := range want {
		if t, ok := had[s.name]; ok && t != s.timeout {
			out = append(out, s.name)
		}
	}
	return out
}
