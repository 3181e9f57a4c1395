package iptables

import (
	"bytes"
	"hash/maphash"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// Writing only what differs. iptables-nft 1.8.9 makes a --noflush restore
// cost far more than its line count: every command's chain (and jump target)
// goes through a name-sorted linked list (cache_chain_list_insert), so an
// input naming n chains costs O(lines × n) string compares; at 10k services
// that is minutes. Two things keep inputs small:
//   - partial syncs skip chains whose rules are byte-identical to what the
//     proxier itself wrote last time (KUBE-SERVICES rarely changes when an
//     endpoint does);
//   - full syncs compare each rendered chain with the kernel's copy from the
//     iptables-save they read anyway, and skip chains that already match, so
//     a restart over existing rules rewrites almost nothing.
// When a large input remains (the first sync into an empty table), see
// wantsListPrefix.

// chainState is what the proxier knows about one chain it wrote.
type chainState struct {
	// rendered hashes the chain's rule lines as rendered.
	rendered uint64
	// saved hashes the same rules as iptables-save prints them; 0 if not computed.
	saved uint64
	// text is the rendered rules of a top-level chain (nil for per-service
	// chains), from which a partial sync derives rule-level edits.
	text []byte
}

// chainMemory maps table → chain → state after the last successful sync.
type chainMemory map[string]map[string]chainState

func (m chainMemory) get(table, chain string) (chainState, bool) {
	s, ok := m[table][chain]
	return s, ok
}

func (m chainMemory) set(table, chain string, s chainState) {
	t := m[table]
	if t == nil {
		t = map[string]chainState{}
		m[table] = t
	}
	t[chain] = s
}

// diffAgainstMemory drops from a partial sync's input every chain whose
// rendered rules equal what the last successful sync left in that chain.
func diffAgainstMemory(g *Rendering, seed maphash.Seed, mem chainMemory) (skipped int) {
	for _, t := range g.tables {
		deleting := namesSet(t.deletes)
		t.chains = filterChains(t.chains, func(c *chainText) bool {
			if deleting[c.name] {
				return true
			}
			s, ok := mem.get(t.name, c.name)
			if ok && s.rendered == maphash.Bytes(seed, c.rules) {
				return false
			}
			if edits, ok := ruleEdits(c.name, s.text, c.rules); ok {
				t.inserts = append(t.inserts, edits...)
				return false
			}
			return true
		}, &skipped)
	}
	return skipped
}

// Rule-level edits replace rewriting a long top-level chain (KUBE-SERVICES
// of 10k services is 1.7 s to flush and refill at 10k services) when only a
// few of its rules changed.
const (
	editMinRules = 64
	editMaxEdits = 64
)

// ruleEdits turns old → new chain text into "-D CHAIN rule" and
// "-I CHAIN n rule" lines, deletions first, then insertions in ascending
// final position. It declines (false) for short chains, many edits,
// duplicate rules or reordered rules, where a rewrite is as cheap or required.
func ruleEdits(chain string, old, next []byte) ([]string, bool) {
	o, n := splitRuleLines(old), splitRuleLines(next)
	if len(o) < editMinRules || len(n) < editMinRules {
		return nil, false
	}
	inOld, okOld := lineSet(o)
	inNew, okNew := lineSet(n)
	if !okOld || !okNew {
		return nil, false
	}
	var dels, ins []string
	i, j := 0, 0
	for i < len(o) || j < len(n) {
		switch {
		case len(dels)+len(ins) > editMaxEdits:
			return nil, false
		case i < len(o) && j < len(n) && o[i] == n[j]:
			i, j = i+1, j+1
		case i < len(o) && !inNew[o[i]]:
			dels = append(dels, "-D"+o[i][2:])
			i++
		case j < len(n) && !inOld[n[j]]:
			ins = append(ins, "-I "+chain+" "+strconv.Itoa(j+1)+n[j][len("-A "+chain):])
			j++
		default: // the same rules in another order
			return nil, false
		}
	}
	return append(dels, ins...), true
}

func splitRuleLines(b []byte) []string {
	var out []string
	for line := range bytes.Lines(b) {
		out = append(out, string(bytes.TrimSuffix(line, []byte("\n"))))
	}
	return out
}

// lineSet indexes lines; false if a line repeats.
func lineSet(lines []string) (map[string]bool, bool) {
	m := make(map[string]bool, len(lines))
	for _, l := range lines {
		if m[l] {
			return nil, false
		}
		m[l] = true
	}
	return m, true
}

// diffAgainstKernel drops from a full sync's input every chain whose rules
// in the saved tables are exactly what iptables-save would print for the
// rendered rules. Chains the saved tables lack, or whose rules do not parse,
// are kept (written).
func diffAgainstKernel(g *Rendering, pl *syncPlan, family v1.IPFamily, seed maphash.Seed, mem chainMemory) (skipped int) {
	for _, t := range g.tables {
		saved := pl.savedTable(t.name)
		if saved == nil {
			continue
		}
		byChain := rulesByChain(saved)
		deleting := namesSet(t.deletes)
		t.chains = filterChains(t.chains, func(c *chainText) bool {
			if deleting[c.name] || !saved.HasChain(c.name) {
				return true
			}
			want, ok := expectedSaveHash(t.name, c, family, seed, mem)
			return !ok || want != savedLinesHash(seed, byChain[c.name])
		}, &skipped)
	}
	return skipped
}

// filterChains keeps the chains for which keep is true, counting the others.
func filterChains(chains []chainText, keep func(*chainText) bool, dropped *int) []chainText {
	out := chains[:0]
	for i := range chains {
		if keep(&chains[i]) {
			out = append(out, chains[i])
		} else {
			*dropped++
		}
	}
	return out
}

func namesSet(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// expectedSaveHash hashes the chain's rules as iptables-save prints them.
// The parse is skipped when memory holds the same rendered rules.
func expectedSaveHash(table string, c *chainText, family v1.IPFamily, seed maphash.Seed, mem chainMemory) (uint64, bool) {
	rendered := maphash.Bytes(seed, c.rules)
	if s, ok := mem.get(table, c.name); ok && s.rendered == rendered && s.saved != 0 {
		return s.saved, true
	}
	var h maphash.Hash
	h.SetSeed(seed)
	rest := c.rules
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		save, ok := saveForm(string(line), family)
		if !ok {
			return 0, false
		}
		h.WriteString(save)
		h.WriteByte('\n')
	}
	sum := h.Sum64()
	mem.set(table, c.name, chainState{rendered: rendered, saved: sum})
	return sum, true
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

// savedLinesHash hashes saved rule arguments the way expectedSaveHash does.
func savedLinesHash(seed maphash.Seed, lines []string) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	for _, l := range lines {
		h.WriteString(l)
		h.WriteByte('\n')
	}
	return h.Sum64()
}

// rememberChains records the rendered state of every chain of g, after a
// successful sync, and forgets deleted chains. A full sync starts from scratch.
func rememberChains(mem chainMemory, g *Rendering, all []*tableText, seed maphash.Seed, full bool) chainMemory {
	if full {
		next := chainMemory{}
		for _, t := range all {
			next[t.name] = make(map[string]chainState, len(t.chains))
			for i := range t.chains {
				c := &t.chains[i]
				s, _ := mem.get(t.name, c.name)
				r := maphash.Bytes(seed, c.rules)
				if s.rendered != r {
					s = chainState{rendered: r}
				}
				if s.text == nil {
					s.text = topLevelText(c)
				}
				next.set(t.name, c.name, s)
			}
		}
		mem = next
	} else {
		for _, t := range all {
			for i := range t.chains {
				c := &t.chains[i]
				if s, ok := mem.get(t.name, c.name); !ok || s.rendered != maphash.Bytes(seed, c.rules) {
					mem.set(t.name, c.name, chainState{rendered: maphash.Bytes(seed, c.rules), text: topLevelText(c)})
				}
			}
		}
	}
	for _, t := range g.tables {
		for _, d := range t.deletes {
			delete(mem[t.name], d)
		}
	}
	return mem
}

// topLevelText copies the rules of a top-level chain; per-service chains are
// short and always rewritten whole, so their text is not kept.
func topLevelText(c *chainText) []byte {
	if netfilter.IsServiceChainName(c.name) {
		return nil
	}
	return bytes.Clone(c.rules)
}

// rulesByChain groups saved rule arguments (after "-A CHAIN ") by chain.
func rulesByChain(t *ruleset.SavedTable) map[string][]string {
	m := make(map[string][]string, len(t.Chains))
	for _, r := range t.Rules {
		args := strings.TrimPrefix(r.Line, "-A "+r.Chain)
		m[r.Chain] = append(m[r.Chain], strings.TrimPrefix(args, " "))
	}
	return m
}

func (pl *syncPlan) savedTable(name string) *ruleset.SavedTable {
	switch name {
	case "nat":
		return pl.nat
	case "filter":
		return pl.filter
	}
	return nil
}

// tableChains copies the chain lists of g (headers only) before chains are
// skipped, so the memory can record every chain the kernel now holds.
func tableChains(g *Rendering) []*tableText {
	out := make([]*tableText, len(g.tables))
	for i, t := range g.tables {
		out[i] = &tableText{name: t.name, chains: append([]chainText(nil), t.chains...)}
	}
	return out
}

// skipUnchanged leaves out chains the kernel already holds as rendered:
// compared with the saved tables on a full sync, with memory otherwise.
func (p *Proxier) skipUnchanged(pl *syncPlan, g *Rendering) {
	if pl.full {
		family := p.renderer.opts.Family
		if family == "" {
			family = pl.snap.Family
		}
		diffAgainstKernel(g, pl, family, p.seed, p.chains)
		if pl.source == fromMemory {
			skipRemembered(g, pl, p.seed, p.chains)
		}
		return
	}
	diffAgainstMemory(g, p.seed, p.chains)
}

// skipRemembered drops, from a full sync that could not read whole tables,
// the per-service chains the last successful sync wrote exactly as rendered
// now. Top-level chains are still rewritten whole (or compared with their
// listing): memory of them feeds rule-level edits, which would fail the
// restore, and every sync after it, if the kernel's copy had drifted.
func skipRemembered(g *Rendering, pl *syncPlan, seed maphash.Seed, mem chainMemory) (skipped int) {
	for _, t := range g.tables {
		saved := pl.savedTable(t.name)
		deleting := namesSet(t.deletes)
		t.chains = filterChains(t.chains, func(c *chainText) bool {
			if deleting[c.name] || !netfilter.IsServiceChainName(c.name) || (saved != nil && saved.HasChain(c.name)) {
				return true
			}
			s, ok := mem.get(t.name, c.name)
			return !ok || s.rendered != maphash.Bytes(seed, c.rules)
		}, &skipped)
	}
	return skipped
}

// Thresholds for the list prefix: below listPrefixMinChains the sorted
// list costs less than anything else; above it, the prefix pays off when the
// input names several times more chains than the table holds (listing a big
// table is itself expensive).
const (
	listPrefixMinChains = 1000
	listPrefixRatio     = 4
)

// listPrefixTables names the tables whose restore block should start with
// "-S". A table-wide command as the first statement makes iptables-nft skip
// its per-chain cache bookkeeping (nft_cache_level_set sets all_chains and
// stops inserting into the sorted chain list), which turns the O(lines ×
// chains) cost of a large --noflush input into the linear cost of a plain
// restore: measured 2.3 s → 0.75 s for 1k services. "-S" is the only
// table-wide command without side effects; it prints the table as it was
// before the restore, so it is used only when the table holds few chains.
func (p *Proxier) listPrefixTables(pl *syncPlan, g *Rendering) []string {
	var out []string
	for _, t := range g.tables {
		if wantsListPrefix(len(t.chains), p.existingChains(pl, t.name, len(t.chains))) {
			out = append(out, t.name)
		}
	}
	return out
}

func wantsListPrefix(declared, existing int) bool {
	return declared >= listPrefixMinChains && declared > listPrefixRatio*existing
}

// markListPrefix makes the first block of each named table start with
// "-S". It is written in place by Bytes: copying a 30 MB input to insert
// three bytes doubled the sync's peak memory.
func markListPrefix(g *Rendering, tables []string) {
	for _, name := range tables {
		g.table(name).listPrefix = true
	}
}

// moveInsertsToOwnBlock puts the "-I"/"-D" lines of prefixed tables, and the
// chain deletions that must follow them, into a second block of the same
// table: after a table-wide command, iptables-nft 1.8.9 fails to insert into
// built-in chains that do not exist yet in the kernel (RULE_INSERT failed: No
// such file or directory) in the same block. The chains to delete are still
// flushed in the first block.
func moveInsertsToOwnBlock(g *Rendering, prefixed []string) {
	for _, name := range prefixed {
		t := g.table(name)
		if len(t.inserts) == 0 {
			continue
		}
		g.tables = append(g.tables, &tableText{name: name, inserts: t.inserts, deletes: t.deletes})
		t.inserts, t.deletes = nil, nil
	}
}

func containsName(names []string, n string) bool {
	for _, x := range names {
		if x == n {
			return true
		}
	}
	return false
}
