package iptables

import (
	"bytes"
	"hash/maphash"
	"slices"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// The diff: what must change for the kernel to hold the rendering. Writing
// only what differs matters because iptables-nft 1.8.9 makes a --noflush
// restore cost far more than its line count: every command's chain (and
// jump target) goes through a name-sorted linked list
// (cache_chain_list_insert), so an input naming n chains costs
// O(lines × n) string compares; at 10k services that is minutes. So:
//   - chains the kernel already holds as rendered are left out: compared
//     with the memory (partial syncs, and per-service chains of full syncs
//     that could not read nat) by the hash of the rendered rules, with a
//     table read back by the hash of the rules as iptables-save prints
//     them, so a restart over existing rules rewrites almost nothing;
//   - a long top-level chain whose remembered rules differ in a few rules
//     is edited rule by rule (ruleEdits).

// changes is what a sync changes, per table: the chains it declares
// (creates or flushes) and fills, the rule lines it inserts or deletes
// (missing jump rules, rule-level edits), and the chains it flushes and
// deletes. It also records what each table holds afterwards, which the
// apply step makes the memory. How the changes are fed to iptables-restore
// is the restore plan's business (restore_plan.go).
type changes struct {
	full   bool
	tables []*tableChanges
}

// tableChanges are one table's changes.
type tableChanges struct {
	name    string
	write   []chainText
	edits   []string
	deletes []string
	// rendered are the rendering's chains (read-only), all of them, with the
	// hash of each one's rules and, when the diff computed it, of their
	// iptables-save form (0 otherwise).
	rendered      []chainText
	hashes, saved []uint64
	// extra are empty chains declared beyond the rendering: canaries, and
	// jump targets that do not exist.
	extra []chainText
}

// diffOptions configure the diff.
type diffOptions struct {
	family v1.IPFamily
	seed   maphash.Seed
	// savedForm returns the iptables-save form's hash of a chain rendered
	// as before (memory.savedForm), so unchanged chains are not parsed again.
	savedForm func(table, chain string, rendered uint64) (uint64, bool)
}

// diff compares the rendering with the kernel state. A full rendering also
// declares the canaries and inserts the jump rules the kernel lacks.
func diff(ks *kernelState, g *Rendering, opts diffOptions) *changes {
	b := g.view()
	ch := &changes{full: b.full}
	for _, t := range b.tables {
		ch.tables = append(ch.tables, &tableChanges{name: t.name, rendered: t.chains})
	}
	if b.full {
		addMissingJumps(ch, g, ks)
		addCanaries(ch, g)
	}
	for _, t := range ch.tables {
		opts.compareTable(t, ks)
	}
	addStaleDeletions(ch, g, ks)
	return ch
}

// table returns the named table's changes, adding an empty one if needed.
func (ch *changes) table(name string) *tableChanges {
	for _, t := range ch.tables {
		if t.name == name {
			return t
		}
	}
	t := &tableChanges{name: name}
	ch.tables = append(ch.tables, t)
	return t
}

// declares reports whether the table's rendering or extras hold chain.
func (t *tableChanges) declares(g *Rendering, chain string) bool {
	return g.table(t.name).declares(chain) || slices.ContainsFunc(t.extra, func(c chainText) bool { return c.name == chain })
}

// addMissingJumps inserts, at the top of built-in chains, the jumps of
// upstream's iptablesJumpChains that the kernel lacks, so a sync never
// duplicates them.
func addMissingJumps(ch *changes, g *Rendering, ks *kernelState) {
	for _, m := range ks.missingJumps {
		t := ch.table(m.rule.Table)
		if !m.targetExists && !t.declares(g, m.rule.To) {
			t.extra = append(t.extra, chainText{name: m.rule.To})
		}
		t.edits = append(t.edits, m.rule.InsertLine())
	}
}

// addCanaries (re)creates the empty KUBE-PROXY-CANARY chains whose
// disappearance tells the monitor that someone flushed iptables.
func addCanaries(ch *changes, g *Rendering) {
	for _, name := range netfilter.CanaryTables() {
		if t := ch.table(name); !t.declares(g, netfilter.CanaryChain) {
			t.extra = append(t.extra, chainText{name: netfilter.CanaryChain})
		}
	}
}

// addStaleDeletions flushes and deletes per-service nat chains that are no
// longer needed: those the renderer dropped (only changed or removed
// services can drop chains, so a partial sync never walks all chains), and
// the kernel state's stale ones the rendering does not use.
func addStaleDeletions(ch *changes, g *Rendering, ks *kernelState) {
	b := g.view()
	stale := slices.Clone(b.removed)
	for _, c := range ks.stale {
		if _, ok := b.active[c]; !ok {
			stale = append(stale, c)
		}
	}
	slices.Sort(stale)
	stale = slices.Compact(stale)
	nat := ch.table("nat")
	for _, c := range stale {
		nat.write = append(nat.write, chainText{name: c})
		nat.deletes = append(nat.deletes, c)
	}
}

// compareTable decides, chain by chain, what the table's changes write.
func (o diffOptions) compareTable(t *tableChanges, ks *kernelState) {
	kt := ks.table(t.name)
	t.hashes = make([]uint64, len(t.rendered))
	t.saved = make([]uint64, len(t.rendered))
	// Room for every chain: a full sync into empty tables writes them all
	// (110k at 10k services), and regrowing that slice cost twice as much.
	t.write = make([]chainText, 0, len(t.rendered)+len(t.extra))
	for i := range t.rendered {
		c := &t.rendered[i]
		t.hashes[i] = maphash.Bytes(o.seed, c.rules)
		t.saved[i] = o.compareChain(t, c, t.hashes[i], ks, kt)
	}
	for i := range t.extra {
		o.compareChain(t, &t.extra[i], maphash.Bytes(o.seed, nil), ks, kt)
	}
}

// compareChain adds c to the writes or its edits to the table's, unless
// the kernel holds it as rendered. It returns the hash of c's rules in
// iptables-save form when it computed it.
func (o diffOptions) compareChain(t *tableChanges, c *chainText, rendered uint64, ks *kernelState, kt *kernelTable) (saved uint64) {
	k, ok := ks.chain(kt, c.name)
	switch {
	case !ok:
	case k.listed:
		saved, ok = o.savedHash(t.name, c, rendered)
		if ok && saved == k.saved {
			return saved
		}
	case k.rendered == rendered:
		return 0
	default:
		if edits, ok := ruleEdits(c.name, k.text, c.rules); ok {
			t.edits = append(t.edits, edits...)
			return 0
		}
	}
	t.write = append(t.write, *c)
	return saved
}

// savedHash hashes the chain's rules as iptables-save prints them (as
// savedRulesHashes does for a table read back); false if a rule does not
// parse. The parse is skipped when the memory holds the same rendered rules.
func (o diffOptions) savedHash(table string, c *chainText, rendered uint64) (uint64, bool) {
	if o.savedForm != nil {
		if s, ok := o.savedForm(table, c.name, rendered); ok {
			return s, true
		}
	}
	var h maphash.Hash
	h.SetSeed(o.seed)
	rest := c.rules
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		save, ok := saveForm(string(line), o.family)
		if !ok {
			return 0, false
		}
		h.WriteString(save)
		h.WriteByte('\n')
	}
	return h.Sum64(), true
}

// saveForm turns "-A CHAIN args" into the arguments iptables-save prints.
func saveForm(line string, family v1.IPFamily) (string, bool) {
	args, err := ruleset.SplitArgs(line)
	if err != nil || len(args) < 2 || args[0] != "-A" {
		return "", false
	}
	r, err := ruleset.ParseRule(args[2:], family)
	if err != nil {
		return "", false
	}
	return r.SaveLine(), true
}
