package iptables

import (
	"bytes"
	"context"

	"github.com/kproxy/kproxy/proxier/netfilter"
)

// Restoring a restart in batches. A full sync that could not read the nat
// table (see plan_kernel.go) must rewrite every per-service chain. With
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

// writeServiceBatches restores the per-service nat chains of a full sync
// that did not read the table from iptables-save in batches, removing them
// from g, and returns the bytes written. It does nothing when the input is
// small, or when the nat block uses the "-S" prefix (an empty table).
func (p *Proxier) writeServiceBatches(ctx context.Context, pl *syncPlan, g *Rendering, prefixed []string) (int, error) {
	if !pl.full || pl.source == fromSave || containsName(prefixed, "nat") {
		return 0, nil
	}
	nat := g.table("nat")
	batches, rest := splitServiceBatches(nat, g.active, p.batchChains)
	if len(batches) < 2 {
		return 0, nil
	}
	var buf bytes.Buffer
	written := 0
	for _, b := range batches {
		buf.Reset()
		t := tableText{name: "nat", chains: b}
		t.writeTo(&buf)
		if err := p.apply(ctx, pl, buf.Bytes()); err != nil {
			return written, err
		}
		written += buf.Len()
	}
	nat.chains = rest
	return written, nil
}

// splitServiceBatches cuts the active per-service chains of t (contiguous
// per service, in render order) into batches of about limit chains, never
// splitting a service; KUBE-MARK-MASQ joins the first batch. The other chains
// (top-level, stale ones being deleted) are returned as rest.
func splitServiceBatches(t *tableText, active map[string]*portState, limit int) (batches [][]chainText, rest []chainText) {
	deleting := namesSet(t.deletes)
	var cur []chainText
	var last *portState
	for _, c := range t.chains {
		owner, ok := active[c.name]
		switch {
		case c.name == netfilter.MarkMasqChain:
			batches = append(batches, []chainText{c})
		case !ok || deleting[c.name]:
			rest = append(rest, c)
		default:
			if len(cur) >= limit && owner != last {
				batches = append(batches, cur)
				cur = nil
			}
			cur = append(cur, c)
			last = owner
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
