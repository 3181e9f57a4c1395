package nftnl

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Batch is one nf_tables transaction on a table: the operations a sync
// writes, in order. The kernel applies a batch whole or not at all.
// String gives the same operations as nft text, in knftables' format, so a
// batch can be compared with the knftables.Transaction it replaces.
type Batch struct {
	fam   Family
	table string
	ops   []op
}

// NewBatch starts an empty batch on table of family f.
func NewBatch(f Family, table string) *Batch { return &Batch{fam: f, table: table} }

type opKind uint8

const (
	opAddChain opKind = iota
	opFlushChain
	opDeleteChain
	opAddAffinitySet
	opDeleteSet
	opAddRule
	opAddElements
	opDeleteElements
	opFlushSet
	opAddTable
	opDeclareChain
	opDeclareSet
	opAddCounter
	opDeleteCounter
	opDeleteRule
)

type op struct {
	kind opKind
	// name is the chain or set the operation is on.
	name string
	rule Rule
	// handle is, for opAddRule, the rule the new one goes before (0:
	// appended); for opDeleteRule, the rule deleted.
	handle  uint64
	timeout time.Duration
	elems   []Element
	isMap   bool // opFlushSet, opDeleteSet, opDeclareSet: the set is a map
	// The declarations of objects.go: the table's comment, a chain's or a
	// set's declaration.
	comment string
	chain   *Chain
	set     *Set
}

// Element is a set or map element: its key fields in order, the verdict
// for a verdict map (nil for a set), and an optional comment.
type Element struct {
	Key     []Field
	Verdict *Verdict
	Comment string
}

// Field is one field of an element key: an address, an L4 protocol or a
// port (AddrField, ProtoField, PortField).
type Field struct {
	kind  fieldKind
	addr  netip.Addr
	proto string
	port  uint16
}

type fieldKind uint8

const (
	fieldAddr fieldKind = iota + 1
	fieldProto
	fieldPort
)

// AddrField is an ipv4_addr or ipv6_addr key field.
func AddrField(a netip.Addr) Field { return Field{kind: fieldAddr, addr: a} }

// ProtoField is an inet_proto key field: "tcp", "udp" or "sctp".
func ProtoField(p string) Field { return Field{kind: fieldProto, proto: p} }

// PortField is an inet_service key field.
func PortField(p uint16) Field { return Field{kind: fieldPort, port: p} }

func (f Field) String() string {
	switch f.kind {
	case fieldAddr:
		return f.addr.String()
	case fieldProto:
		return f.proto
	case fieldPort:
		return strconv.Itoa(int(f.port))
	}
	return "?"
}

// Verdict is a verdict map's value: drop, or goto Chain.
type Verdict struct {
	Drop  bool
	Chain string
}

func (v Verdict) String() string {
	if v.Drop {
		return "drop"
	}
	return "goto " + v.Chain
}

// Len is the number of operations in b.
func (b *Batch) Len() int { return len(b.ops) }

// AddChain adds a regular chain (nothing happens if it exists).
func (b *Batch) AddChain(name string) { b.ops = append(b.ops, op{kind: opAddChain, name: name}) }

// FlushChain deletes every rule of a chain.
func (b *Batch) FlushChain(name string) { b.ops = append(b.ops, op{kind: opFlushChain, name: name}) }

// DeleteChain deletes an empty, unreferenced chain.
func (b *Batch) DeleteChain(name string) { b.ops = append(b.ops, op{kind: opDeleteChain, name: name}) }

// AddAffinitySet adds a ClientIP affinity set: addresses of the table's
// family, flags dynamic and timeout, the given timeout (whole seconds).
func (b *Batch) AddAffinitySet(name string, timeout time.Duration) {
	b.ops = append(b.ops, op{kind: opAddAffinitySet, name: name, timeout: timeout})
}

// DeleteSet deletes a named set no rule refers to.
func (b *Batch) DeleteSet(name string) { b.ops = append(b.ops, op{kind: opDeleteSet, name: name}) }

// AddRule appends r to chain.
func (b *Batch) AddRule(chain string, r Rule) {
	b.ops = append(b.ops, op{kind: opAddRule, name: chain, rule: r})
}

// InsertRule inserts r into chain just before the rule with handle before
// (so rules inserted before the same handle keep their order).
func (b *Batch) InsertRule(chain string, before uint64, r Rule) {
	b.ops = append(b.ops, op{kind: opAddRule, name: chain, rule: r, handle: before})
}

// DeleteRule deletes the rule with handle from chain.
func (b *Batch) DeleteRule(chain string, handle uint64) {
	b.ops = append(b.ops, op{kind: opDeleteRule, name: chain, handle: handle})
}

// FlushSet deletes every element of a named set, or of a map when isMap.
func (b *Batch) FlushSet(name string, isMap bool) {
	b.ops = append(b.ops, op{kind: opFlushSet, name: name, isMap: isMap})
}

// AddElements adds elements to a named set or map. Elements added to the
// set the previous operation added to join that operation: they go to the
// kernel in one request.
func (b *Batch) AddElements(set string, elems ...Element) {
	b.elements(opAddElements, set, elems)
}

// DeleteElements deletes elements (by key) from a named set or map. A map's
// elements carry a Verdict (any) so that AppendTo can tell maps from sets;
// only keys are sent.
func (b *Batch) DeleteElements(set string, elems ...Element) {
	b.elements(opDeleteElements, set, elems)
}

func (b *Batch) elements(kind opKind, set string, elems []Element) {
	if n := len(b.ops); n > 0 && b.ops[n-1].kind == kind && b.ops[n-1].name == set {
		b.ops[n-1].elems = append(b.ops[n-1].elems, elems...)
		return
	}
	// Clipped: a later append must not write into the caller's array.
	b.ops = append(b.ops, op{kind: kind, name: set, elems: slices.Clip(elems)})
}

// String is b as nft -f input, one line per operation and per element,
// formatted as knftables formats the same objects.
func (b *Batch) String() string {
	var s strings.Builder
	b.eachLine(func(line string) { s.WriteString(line + "\n") })
	return s.String()
}

// TextSize is len(b.String()) without building the text: a full sync's
// batch is megabytes of it, wanted only for its size.
func (b *Batch) TextSize() int {
	n := 0
	b.eachLine(func(line string) { n += len(line) + 1 })
	return n
}

// eachLine calls f with each line of b as nft -f input, in order.
func (b *Batch) eachLine(f func(string)) {
	for i := range b.ops {
		o := &b.ops[i]
		if o.kind != opAddElements && o.kind != opDeleteElements {
			f(b.opLine(o, -1))
			continue
		}
		for j := range o.elems {
			f(b.opLine(o, j))
		}
	}
}

// opLine is o as one nft command; for an element operation, the command
// for its element elem, or the operation without its elements when elem
// is negative (for an error that cannot name the element).
func (b *Batch) opLine(o *op, elem int) string {
	if line, ok := b.objectLine(o); ok {
		return line
	}
	where := b.fam.IP() + " " + b.table + " " + o.name
	switch o.kind {
	case opAddChain:
		return "add chain " + where
	case opFlushChain:
		return "flush chain " + where
	case opDeleteChain:
		return "delete chain " + where
	case opAddAffinitySet:
		return fmt.Sprintf("add set %s { type %s ; flags dynamic,timeout ; timeout %ds ; }", where, b.fam.addrTypeName(), int64(o.timeout.Seconds()))
	case opDeleteSet:
		if o.isMap {
			return "delete map " + where
		}
		return "delete set " + where
	case opFlushSet:
		if o.isMap {
			return "flush map " + where
		}
		return "flush set " + where
	case opDeleteRule:
		return "delete rule " + where + " handle " + strconv.FormatUint(o.handle, 10)
	case opAddRule:
		line := "add rule " + where
		if o.handle != 0 {
			line = "insert rule " + where + " handle " + strconv.FormatUint(o.handle, 10)
		}
		line += " " + o.rule.Text(b.fam)
		if o.rule.Comment != "" {
			line += fmt.Sprintf(" comment %q", o.rule.Comment)
		}
		return line
	}
	verb := "add"
	if o.kind == opDeleteElements {
		verb = "delete"
	}
	if elem < 0 || elem >= len(o.elems) {
		return verb + " element " + where
	}
	return verb + " element " + where + " { " + o.elems[elem].text(o.kind == opAddElements) + " }"
}

// text is e between the braces of an element command; a delete names the
// key only.
func (e Element) text(add bool) string {
	var s strings.Builder
	for i, f := range e.Key {
		if i > 0 {
			s.WriteString(" . ")
		}
		s.WriteString(f.String())
	}
	if add {
		if e.Comment != "" {
			fmt.Fprintf(&s, " comment %q", e.Comment)
		}
		if e.Verdict != nil {
			s.WriteString(" : " + e.Verdict.String())
		}
	}
	return s.String()
}
