package nftnl

import "sigs.k8s.io/knftables"

// AppendTo appends b's operations to tx, a knftables transaction on the
// same family and table, so that a batch can run on knftables' Fake in
// unit tests, or through nft -f, as the same objects; tx.String() then
// equals b.String(). isMap says which named containers are maps: the
// Fake keeps sets and maps apart, and a delete does not carry the verdict.
func (b *Batch) AppendTo(tx *knftables.Transaction, isMap func(name string) bool) {
	for i := range b.ops {
		o := &b.ops[i]
		switch o.kind {
		case opAddChain:
			tx.Add(&knftables.Chain{Name: o.name})
		case opFlushChain:
			tx.Flush(&knftables.Chain{Name: o.name})
		case opDeleteChain:
			tx.Delete(&knftables.Chain{Name: o.name})
		case opAddAffinitySet:
			timeout := o.timeout
			tx.Add(&knftables.Set{Name: o.name, Type: b.fam.addrTypeName(),
				Flags: []knftables.SetFlag{knftables.DynamicFlag, knftables.TimeoutFlag}, Timeout: &timeout})
		case opDeleteSet:
			tx.Delete(&knftables.Set{Name: o.name})
		case opAddRule:
			tx.Add(&knftables.Rule{Chain: o.name, Rule: o.rule.Text(b.fam), Comment: optional(o.rule.Comment)})
		case opAddElements:
			for _, e := range o.elems {
				tx.Add(knftElement(o.name, isMap(o.name), e))
			}
		case opDeleteElements:
			for _, e := range o.elems {
				tx.Delete(knftElement(o.name, isMap(o.name), Element{Key: e.Key}))
			}
		}
	}
}

func knftElement(container string, isMap bool, e Element) *knftables.Element {
	el := &knftables.Element{Comment: optional(e.Comment)}
	for _, f := range e.Key {
		el.Key = append(el.Key, f.String())
	}
	if e.Verdict != nil {
		el.Value = []string{e.Verdict.String()}
	}
	if isMap {
		el.Map = container
	} else {
		el.Set = container
	}
	return el
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// addrTypeName is the family's address type as nft writes it.
func (f Family) addrTypeName() string {
	if f == IPv6 {
		return "ipv6_addr"
	}
	return "ipv4_addr"
}
