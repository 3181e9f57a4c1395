package iptables

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
)

// Rendering is the result of one Render: the filter and nat chains the
// snapshot needs, as iptables-restore rule lines, plus what a sync needs to
// know about them. It is output only: no step after Render changes it (the
// sync's diff copies what it writes, see diff.go), and it knows nothing of
// the kernel.
//
// It belongs to the Renderer that made it: its rule bytes are slices of the
// Renderer's buffers and its active chains the Renderer's map, which the
// next Render rewrites. So it is valid until that Render, and every use of
// its contents goes through view, which panics after it (a compare, no
// allocation) instead of reading the next render's rules.
type Rendering struct {
	owner *Renderer
	gen   uint64
	body  rendered
}

// rendered is a Rendering's contents, reached only through Rendering.view.
type rendered struct {
	tables []*renderedTable
	out    *bytes.Buffer
	// active holds every per-service nat chain the snapshot needs, rewritten
	// or not, with its service port (the Renderer's map, valid until the
	// next Render); removed are the chains the previous render of this
	// Renderer needed and this one does not.
	active  map[string]*portState
	removed []string
	// full is set when every per-service chain was rendered (snap.Full);
	// otherwise only those of changed service ports were.
	full        bool
	filterRules int
	natRules    int
}

// renderedTable is one table's chains, top-level chains first, then the
// per-service chains in render order.
type renderedTable struct {
	name   string
	chains []chainText
}

// chainText is a declared chain and its rule lines; rules is empty for a
// chain that is only declared (created or flushed).
type chainText struct {
	name  string
	rules []byte
	// group numbers the service port a per-service chain belongs to (from
	// 1, in render order); 0 for other chains.
	group int32
}

func (r *renderRun) finish() *Rendering {
	f, n := &r.filter, &r.nat
	filterChains := []*chainBuf{f.services, f.external, f.forward, f.nodePorts, f.proxyFirewall}
	if r.localhostNodePorts {
		filterChains = append(filterChains, f.firewall)
	}
	natChains := []*chainBuf{n.services, n.nodePorts, n.postrouting, n.markMasq}
	out := &rendered{active: r.state.owner, removed: r.removed, out: r.out, full: r.snap.Full}
	filter := &renderedTable{name: "filter"}
	for _, c := range filterChains {
		filter.chains = append(filter.chains, chainText{name: c.name, rules: c.buf.Bytes()})
		out.filterRules += c.w.lines
	}
	nat := &renderedTable{name: "nat", chains: make([]chainText, 0, len(natChains)+len(r.segs))}
	for _, c := range natChains {
		nat.chains = append(nat.chains, chainText{name: c.name, rules: c.buf.Bytes()})
		out.natRules += c.w.lines
	}
	svc := r.svcBuf.Bytes()
	for _, s := range r.segs {
		nat.chains = append(nat.chains, chainText{name: s.name, rules: svc[s.start:s.end:s.end], group: s.group})
	}
	out.natRules += r.svc.lines
	out.tables = []*renderedTable{filter, nat}
	return &Rendering{owner: r.owner, gen: r.owner.gen, body: *out}
}

// view returns the rendering's contents; it panics when the Renderer has
// rendered again since.
func (g *Rendering) view() *rendered {
	if g.gen != g.owner.gen {
		panic(fmt.Sprintf("iptables: Rendering %d used after its Renderer's next Render (%d)", g.gen, g.owner.gen))
	}
	return &g.body
}

// RuleCounts returns the number of rules per table after applying this
// rendering, including rules of per-service chains a partial sync left in place.
func (g *Rendering) RuleCounts() map[string]int {
	b := g.view()
	return map[string]int{"filter": b.filterRules, "nat": b.natRules}
}

// ServiceChains returns the sorted names of all per-service nat chains
// (KUBE-SVC/SVL/EXT/FW/SEP) the snapshot needs.
func (g *Rendering) ServiceChains() []string {
	return slices.Sorted(maps.Keys(g.view().active))
}

// Bytes is the rendering as one plain iptables-restore input: each table
// with its chain declarations, then rules grouped by chain, then COMMIT.
// Chains are ordered KUBE-NODEPORTS, KUBE-SERVICES, then by name, which is
// the order upstream's golden tests normalize to. A sync never writes this
// (it writes only what differs, see diff.go and restore_plan.go); goldens,
// tests and benchmarks read it. It sorts a copy of the chain list, so the
// Rendering stays as rendered. The result is the Renderer's output buffer:
// valid until its next Render, like the Rendering.
func (g *Rendering) Bytes() []byte {
	b := g.view()
	blocks := make([]*tableText, len(b.tables))
	for i, t := range b.tables {
		blocks[i] = &tableText{name: t.name, chains: slices.Clone(t.chains)}
	}
	return writeBlocks(b.out, blocks)
}

// table returns the named rendered table, nil if the rendering has none.
func (g *Rendering) table(name string) *renderedTable {
	for _, t := range g.view().tables {
		if t.name == name {
			return t
		}
	}
	return nil
}

// declares reports whether the rendered table holds chain.
func (t *renderedTable) declares(chain string) bool {
	return t != nil && slices.ContainsFunc(t.chains, func(c chainText) bool { return c.name == chain })
}
