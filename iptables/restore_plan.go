package iptables

import (
	"cmp"
	"slices"

	"github.com/kproxy/kproxy/proxier/netfilter"
)

// The restore plan lays the changes out for iptables-restore. Everything
// here works around how iptables (1.8.9, nft and legacy) applies input,
// not what the rules are:
//   - TableRollback snapshots every table but the last block's, so nat,
//     the table that grows with the cluster, goes last (natTablesLast);
//   - a large --noflush input into a nearly empty table starts with "-S"
//     (listPrefixTables), and then its inserts need a block of their own
//     (moveInsertsToOwnBlock);
//   - a large full sync that could not read nat restores its service
//     chains in batches (cutServiceBatches).

// restorePlan is how a sync's changes reach the kernel: batches of
// per-service nat chains restored first (only for a large full sync that
// could not read nat), then one restore of blocks, nat last.
type restorePlan struct {
	batches [][]chainText
	blocks  []*tableText
}

// layoutOptions configure planRestore.
type layoutOptions struct {
	// services is the number of service ports (for estimating table sizes).
	services int
	// batchChains is batchMaxChains (smaller in tests).
	batchChains int
}

// planRestore lays out ch, given what the kernel state says of the tables'
// sizes and whether nat was read whole.
func planRestore(ch *changes, ks *kernelState, opts layoutOptions) *restorePlan {
	p := &restorePlan{}
	for _, t := range ch.tables {
		p.blocks = append(p.blocks, &tableText{name: t.name, chains: t.write, inserts: t.edits, deletes: t.deletes})
	}
	prefixed := listPrefixTables(p.blocks, ks, opts.services)
	p.prefixTables(prefixed)
	if ch.full && !ks.readWhole("nat") && !containsName(prefixed, "nat") {
		p.cutServiceBatches(opts.batchChains)
	}
	natTablesLast(p.blocks)
	return p
}

// block returns the first block of the named table.
func (p *restorePlan) block(name string) *tableText {
	for _, t := range p.blocks {
		if t.name == name {
			return t
		}
	}
	return nil
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
// The prefix is written in place by writeTo: copying a 30 MB input to
// insert three bytes doubled the sync's peak memory.
func listPrefixTables(blocks []*tableText, ks *kernelState, services int) []string {
	var out []string
	for _, t := range blocks {
		declared := len(t.chains)
		if wantsListPrefix(declared, ks.table(t.name).chainCount(declared, services)) {
			out = append(out, t.name)
		}
	}
	return out
}

func wantsListPrefix(declared, existing int) bool {
	return declared >= listPrefixMinChains && declared > listPrefixRatio*existing
}

// prefixTables starts the first block of each named table with "-S",
// moving its inserts into a block of their own.
func (p *restorePlan) prefixTables(names []string) {
	p.moveInsertsToOwnBlock(names)
	for _, name := range names {
		p.block(name).listPrefix = true
	}
}

// moveInsertsToOwnBlock puts the "-I"/"-D" lines of prefixed tables, and the
// chain deletions that must follow them, into a second block of the same
// table: after a table-wide command, iptables-nft 1.8.9 fails to insert into
// built-in chains that do not exist yet in the kernel (RULE_INSERT failed: No
// such file or directory) in the same block. The chains to delete are still
// flushed in the first block.
func (p *restorePlan) moveInsertsToOwnBlock(prefixed []string) {
	for _, name := range prefixed {
		t := p.block(name)
		if len(t.inserts) == 0 {
			continue
		}
		p.blocks = append(p.blocks, &tableText{name: name, inserts: t.inserts, deletes: t.deletes})
		t.inserts, t.deletes = nil, nil
	}
}

// natTablesLast writes the nat blocks after filter and mangle: TableRollback
// snapshots every table but the last, and nat is the one that grows with
// the cluster (reading it at 10k services takes minutes).
func natTablesLast(blocks []*tableText) {
	slices.SortStableFunc(blocks, func(a, b *tableText) int {
		return cmp.Compare(boolRank(a.name == "nat"), boolRank(b.name == "nat"))
	})
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Restoring a restart in batches. A full sync that could not read the nat
// table (see kernel_read.go) must rewrite every per-service chain. With
// iptables-nft 1.8.9 a --noflush restore costs O(chains named × chains
// named) (each declared chain and jump target is inserted into a name-sorted
// linked list), so one input naming 110k chains runs for many minutes, and
// the "-S" shortcut cannot be used on a table that large. Cut into restores
// of at most batchMaxChains chains, the cost is O(chains × batch). Each batch
// holds whole services (a service's chains only jump to each other and to
// KUBE-MARK-MASQ, which goes first), so every batch is valid on its own; the
// last restore holds the top-level chains, jump rules and deletions, as a
// normal sync does. Losing atomicity is acceptable here: the batches rewrite
// chains the kernel already routes through, usually with the same rules.

// batchMaxChains is the number of per-service chains per batch restore.
const batchMaxChains = 4000

// cutServiceBatches moves the per-service chains of the nat block into
// batches when there are enough of them for two.
func (p *restorePlan) cutServiceBatches(limit int) {
	nat := p.block("nat")
	batches, rest := splitServiceBatches(nat.chains, limit)
	if len(batches) < 2 {
		return
	}
	p.batches, nat.chains = batches, rest
}

// splitServiceBatches cuts the per-service chains (contiguous per service
// port, in render order, each marked with its port's group) into batches
// of about limit chains, never splitting a service port; KUBE-MARK-MASQ
// joins the first batch. The other chains (top-level, extra, stale ones
// being deleted) are returned as rest.
func splitServiceBatches(chains []chainText, limit int) (batches [][]chainText, rest []chainText) {
	var cur []chainText
	var last int32
	for _, c := range chains {
		switch {
		case c.name == netfilter.MarkMasqChain:
			batches = append(batches, []chainText{c})
		case c.group == 0:
			rest = append(rest, c)
		default:
			if len(cur) >= limit && c.group != last {
				batches = append(batches, cur)
				cur = nil
			}
			cur = append(cur, c)
			last = c.group
		}
	}
	if len(cur) > 0 {
		batches = append(batches, cur)
	}
	return mergeMarkMasq(batches), rest
}

// mergeMarkMasq moves a batch holding only KUBE-MARK-MASQ into the first
// batch of service chains, so it is created before anything jumps to it.
func mergeMarkMasq(batches [][]chainText) [][]chainText {
	if len(batches) < 2 || len(batches[0]) != 1 || batches[0][0].name != netfilter.MarkMasqChain {
		return batches
	}
	batches[1] = append(batches[1], batches[0][0])
	return batches[1:]
}
