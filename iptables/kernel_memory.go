package iptables

import (
	"bytes"
	"hash/maphash"

	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
)

// The memory is the kernel state the last successful sync left behind, as
// the sync itself wrote it. It stands in for the kernel where reading it
// costs too much: always on partial syncs (which therefore never read the
// kernel), and for per-service chains on full syncs that cannot read the
// nat table (see kernel_read.go). The apply step makes a
// successful sync's changes the new memory (commit).

// chainState is what the memory knows about one chain kproxy wrote.
type chainState struct {
	// rendered hashes the chain's rule lines as rendered.
	rendered uint64
	// saved hashes the same rules as iptables-save prints them; 0 if not
	// computed. A pure function of the rendered rules, so it doubles as a
	// cache for comparing them with a table read back (diff.go).
	saved uint64
	// text is the rendered rules of a top-level chain (nil for per-service
	// chains), from which a partial sync derives rule-level edits.
	text []byte
}

// memory is what the last successful sync left in the tables.
type memory struct {
	// tables maps table → chain → state: every chain the sync declared.
	tables map[string]map[string]chainState
	// large is the large-cluster mode the rules were rendered in.
	large bool
	// services are the service ports whose chains are in place.
	services map[proxier.ServicePortName]struct{}
}

func (m *memory) get(table, chain string) (chainState, bool) {
	if m == nil {
		return chainState{}, false
	}
	s, ok := m.tables[table][chain]
	return s, ok
}

// chainCount is the number of chains remembered in a table.
func (m *memory) chainCount(table string) int {
	if m == nil {
		return 0
	}
	return len(m.tables[table])
}

// savedForm returns the iptables-save form's hash of a chain that the
// memory holds rendered exactly as now (rendered), so it is not parsed again.
func (m *memory) savedForm(table, chain string, rendered uint64) (uint64, bool) {
	s, ok := m.get(table, chain)
	return s.saved, ok && s.rendered == rendered && s.saved != 0
}

// committed returns the memory after ch applied: after a full sync exactly
// the chains it declared (a new memory); after a partial sync m itself,
// with the chains it wrote replaced and the chains it deleted removed.
func (m *memory) committed(ch *changes, snap *proxier.Snapshot, large bool, seed maphash.Seed) *memory {
	next := m
	if ch.full || m == nil {
		next = &memory{tables: make(map[string]map[string]chainState, len(ch.tables))}
		for _, t := range ch.tables {
			next.tables[t.name] = m.rebuiltTable(t, seed)
		}
	} else {
		for _, t := range ch.tables {
			m.updateTable(t)
		}
	}
	next.large = large
	next.rememberServices(snap, ch.full)
	return next
}

// rebuiltTable records every chain a full sync declared, keeping what the
// old memory computed for chains rendered the same.
func (m *memory) rebuiltTable(t *tableChanges, seed maphash.Seed) map[string]chainState {
	chains := make(map[string]chainState, len(t.rendered)+len(t.extra))
	add := func(c *chainText, rendered, saved uint64) {
		s := chainState{rendered: rendered, saved: saved}
		if old, ok := m.get(t.name, c.name); ok && old.rendered == rendered {
			if s.saved == 0 {
				s.saved = old.saved
			}
			s.text = old.text
		}
		if s.text == nil {
			s.text = topLevelText(c)
		}
		chains[c.name] = s
	}
	for i := range t.rendered {
		add(&t.rendered[i], t.hashes[i], t.saved[i])
	}
	for i := range t.extra {
		add(&t.extra[i], maphash.Bytes(seed, t.extra[i].rules), 0)
	}
	return chains
}

// updateTable records the chains a partial sync rendered (the unchanged
// ones keep their record) and forgets the ones it deleted.
func (m *memory) updateTable(t *tableChanges) {
	chains := m.tables[t.name]
	if chains == nil {
		chains = map[string]chainState{}
		m.tables[t.name] = chains
	}
	for i := range t.rendered {
		c := &t.rendered[i]
		if s, ok := chains[c.name]; !ok || s.rendered != t.hashes[i] {
			chains[c.name] = chainState{rendered: t.hashes[i], text: topLevelText(c)}
		}
	}
	for _, d := range t.deletes {
		delete(chains, d)
	}
}

// rememberServices records the service ports now in the kernel: all of them
// after a full sync, only the changed ones' presence after a partial one.
func (m *memory) rememberServices(snap *proxier.Snapshot, full bool) {
	if full || m.services == nil {
		m.services = make(map[proxier.ServicePortName]struct{}, snap.Len())
		for name := range snap.All() {
			m.services[name] = struct{}{}
		}
		return
	}
	for name := range snap.Changed {
		if _, ok := snap.Service(name); ok {
			m.services[name] = struct{}{}
		} else {
			delete(m.services, name)
		}
	}
}

// removedService reports whether a changed service port that the snapshot
// no longer has still has chains in the kernel. snap.Changed lists every
// service port changed since the last successful sync, so this finds every
// service port gone since then without walking all of them.
func (m *memory) removedService(snap *proxier.Snapshot) bool {
	for name := range snap.Changed {
		if _, ok := snap.Service(name); ok {
			continue
		}
		if _, ok := m.services[name]; ok {
			return true
		}
	}
	return false
}

// topLevelText copies the rules of a top-level chain; per-service chains are
// short and always rewritten whole, so their text is not kept.
func topLevelText(c *chainText) []byte {
	if netfilter.IsServiceChainName(c.name) {
		return nil
	}
	return bytes.Clone(c.rules)
}
