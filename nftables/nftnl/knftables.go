package nftnl

import (
	"context"
	"fmt"
	"time"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"
)

// AppendTo adds b's operations to tx as knftables objects, for nft -f
// (full syncs, and partial ones without netlink). tx must be for b's
// family and table: the objects name neither; tx.String() then equals
// b.String(). Both paths write what one Batch holds, so they cannot drift
// apart. An element with a Verdict belongs to a map (the Fake keeps sets
// and maps apart), also when deleted: only its key is written then.
func (b *Batch) AppendTo(tx *knftables.Transaction) {
	for i := range b.ops {
		b.appendOp(tx, &b.ops[i])
	}
}

func (b *Batch) appendOp(tx *knftables.Transaction, o *op) {
	if b.appendObject(tx, o) {
		return
	}
	switch o.kind {
	case opAddChain:
		tx.Add(&knftables.Chain{Name: o.name})
	case opFlushChain:
		tx.Flush(&knftables.Chain{Name: o.name})
	case opDeleteChain:
		tx.Delete(&knftables.Chain{Name: o.name})
	case opAddAffinitySet:
		tx.Add(&knftables.Set{Name: o.name, Type: b.fam.addrTypeName(),
			// "dynamic" as upstream: some kernels add it to a set with
			// timeouts, and re-adding without it would then fail.
			Flags:   []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag},
			Timeout: ptr.To(o.timeout.Truncate(time.Second))})
	case opDeleteSet:
		if o.isMap {
			tx.Delete(&knftables.Map{Name: o.name})
		} else {
			tx.Delete(&knftables.Set{Name: o.name})
		}
	case opFlushSet:
		if o.isMap {
			tx.Flush(&knftables.Map{Name: o.name})
		} else {
			tx.Flush(&knftables.Set{Name: o.name})
		}
	case opAddRule:
		r := &knftables.Rule{Chain: o.name, Rule: o.rule.Text(b.fam)}
		if o.rule.Comment != "" {
			r.Comment = ptr.To(o.rule.Comment)
		}
		if o.handle != 0 {
			r.Handle = ptr.To(int(o.handle))
			tx.Insert(r)
			return
		}
		tx.Add(r)
	case opDeleteRule:
		tx.Delete(&knftables.Rule{Chain: o.name, Handle: ptr.To(int(o.handle))})
	case opAddElements:
		for i := range o.elems {
			tx.Add(knftElement(o.name, &o.elems[i], true))
		}
	case opDeleteElements:
		for i := range o.elems {
			tx.Delete(knftElement(o.name, &o.elems[i], false))
		}
	}
}

// knftElement is e in the named set (no verdict) or map; values and
// comments only when adding.
func knftElement(set string, e *Element, add bool) *knftables.Element {
	k := &knftables.Element{Key: make([]string, len(e.Key))}
	for i, f := range e.Key {
		k.Key[i] = f.String()
	}
	if e.Verdict == nil {
		k.Set = set
	} else {
		k.Map = set
		if add {
			k.Value = []string{e.Verdict.String()}
		}
	}
	if add && e.Comment != "" {
		k.Comment = ptr.To(e.Comment)
	}
	return k
}

// Fake runs batches as nft -f would, through a knftables.Interface (a
// knftables.Fake in unit tests): what the Fake rejects, it rejects.
type Fake struct {
	NFT knftables.Interface
}

// Run applies b to f.NFT in one transaction.
func (f Fake) Run(ctx context.Context, b *Batch) error {
	tx := f.NFT.NewTransaction()
	b.AppendTo(tx)
	if err := f.NFT.Run(ctx, tx); err != nil {
		return fmt.Errorf("fake netlink batch: %w", err)
	}
	return nil
}

// addrTypeName is the family's address type as nft writes it.
func (f Family) addrTypeName() string {
	if f == IPv6 {
		return "ipv6_addr"
	}
	return "ipv4_addr"
}
