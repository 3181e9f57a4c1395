package nftables

import (
	"time"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/knftables"
)

// writeChanges adds ch to tx in dependency order: chains created and
// flushed (policy chains jump to endpoint chains) and stale chains flushed,
// so that nothing names the re-created and deleted sets any more; affinity
// sets added before the rules naming them; element deletions before
// additions (a changed value is deleted and re-added).
func writeChanges(tx *knftables.Transaction, fam family, ch *changes) {
	// Every chain first: policy chains jump to endpoint chains.
	for i := range ch.writeChain {
		tx.Add(&knftables.Chain{Name: ch.writeChain[i].name})
		tx.Flush(&knftables.Chain{Name: ch.writeChain[i].name})
	}
	for _, name := range ch.flushChain {
		tx.Flush(&knftables.Chain{Name: name})
	}
	for _, name := range ch.recreateSets {
		tx.Delete(&knftables.Set{Name: name})
	}
	for _, s := range ch.addSets {
		tx.Add(&knftables.Set{Name: s.name, Type: fam.addrType,
			// "dynamic" as upstream: some kernels add it to a set with
			// timeouts, and re-adding without it would then fail.
			Flags:   []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag},
			Timeout: ptr.To(time.Duration(s.timeout) * time.Second)})
	}
	for i := range ch.writeChain {
		c := &ch.writeChain[i]
		for _, r := range c.rules {
			kr := &knftables.Rule{Chain: c.name, Rule: r.text}
			if r.comment != "" {
				kr.Comment = ptr.To(r.comment)
			}
			tx.Add(kr)
		}
	}
	for _, e := range ch.elemDelete {
		tx.Delete(knftElement(e.c, e.key, elemValue{}))
	}
	for _, e := range ch.elemAdd {
		tx.Add(knftElement(e.c, e.key, e.val))
	}
	for _, name := range ch.deleteSets {
		tx.Delete(&knftables.Set{Name: name})
	}
}

// flushContainers empties every element set and map (full sync).
func flushContainers(tx *knftables.Transaction) {
	for c := container(0); c < numContainers; c++ {
		tx.Flush(knftContainer(c))
	}
}
