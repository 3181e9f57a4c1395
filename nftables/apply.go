package nftables

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/kproxy/kproxy/nftables/nftnl"
)

// writeChanges adds ch to w's batch in dependency order: chains created and
// flushed (policy chains jump to endpoint chains) and stale chains flushed,
// so that nothing names the re-created and deleted sets any more; affinity
// sets added before the rules naming them; element deletions before
// additions (a changed value is deleted and re-added); rules deleted
// before the sets they name.
func writeChanges(w *batchWriter, ch *changes) {
	if ch.flushElements {
		for c := container(0); c < numContainers; c++ {
			w.b.FlushSet(containers[c].name, !containers[c].isSet)
		}
	}
	// Every chain first: policy chains jump to endpoint chains.
	for i := range ch.writeChain {
		w.b.AddChain(ch.writeChain[i].name)
		w.b.FlushChain(ch.writeChain[i].name)
	}
	for _, name := range ch.flushChain {
		w.b.FlushChain(name)
	}
	for _, name := range ch.recreateSets {
		w.b.DeleteSet(name)
	}
	for _, s := range ch.addSets {
		w.b.AddAffinitySet(s.name, time.Duration(s.timeout)*time.Second)
	}
	for i := range ch.writeChain {
		c := &ch.writeChain[i]
		for _, r := range c.rules {
			w.b.AddRule(c.name, r)
		}
	}
	for i := range ch.insertChain {
		in := &ch.insertChain[i]
		for _, r := range in.chain.rules {
			w.b.InsertRule(in.chain.name, in.before, r)
		}
	}
	for _, e := range ch.elemDelete {
		w.deleteElement(e.c, e.key, e.val)
	}
	for _, e := range ch.elemAdd {
		w.addElement(e.c, e.key, e.val)
	}
	for _, r := range ch.deleteRules {
		w.b.DeleteRule(r.chain, r.handle)
	}
	for _, name := range ch.deleteSets {
		w.b.DeleteSet(name)
	}
	for _, name := range ch.deleteChain {
		w.b.DeleteChain(name)
	}
}

// batchWriter writes a sync's changes to a Batch, which then runs over
// netlink or, appended to a knftables transaction, through nft -f. Element
// keys and values are kproxy's own text (the mirror's map keys); one that
// does not convert is an error of the whole batch, reported by the sync.
type batchWriter struct {
	b   *nftnl.Batch
	err error
}

func (w *batchWriter) addElement(c container, key string, v elemValue) {
	e, err := nlElement(c, key, v)
	if err != nil {
		w.fail(err)
		return
	}
	w.b.AddElements(containers[c].name, e)
}

// deleteElement deletes key from c. The value it had tells a map from a
// set; only the key is sent.
func (w *batchWriter) deleteElement(c container, key string, v elemValue) {
	e, err := nlElement(c, key, elemValue{value: v.value})
	if err != nil {
		w.fail(err)
		return
	}
	w.b.DeleteElements(containers[c].name, e)
}

func (w *batchWriter) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// nlElement converts an element of c from kproxy's text: key fields joined
// by " . " (addresses, protocol names, ports), a map's value "goto CHAIN"
// or "drop" (ignored when empty: a deletion).
func nlElement(c container, key string, v elemValue) (nftnl.Element, error) {
	e := nftnl.Element{Comment: v.comment}
	for _, f := range strings.Split(key, " . ") {
		field, err := nlField(f)
		if err != nil {
			return e, fmt.Errorf("element %q of %s: %w", key, containers[c].name, err)
		}
		e.Key = append(e.Key, field)
	}
	if containers[c].isSet || v.value == "" {
		return e, nil
	}
	switch chain, isGoto := strings.CutPrefix(v.value, "goto "); {
	case isGoto:
		e.Verdict = &nftnl.Verdict{Chain: chain}
	case v.value == "drop":
		e.Verdict = &nftnl.Verdict{Drop: true}
	default:
		return e, fmt.Errorf("element %q of %s: verdict %q", key, containers[c].name, v.value)
	}
	return e, nil
}

func nlField(f string) (nftnl.Field, error) {
	switch f {
	case "tcp", "udp", "sctp":
		return nftnl.ProtoField(f), nil
	}
	if port, err := strconv.ParseUint(f, 10, 16); err == nil {
		return nftnl.PortField(uint16(port)), nil
	}
	a, err := netip.ParseAddr(f)
	if err != nil {
		return nftnl.Field{}, fmt.Errorf("key field %q", f)
	}
	return nftnl.AddrField(a), nil
}
