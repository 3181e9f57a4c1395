package nftnl

import (
	"fmt"
	"strings"

	"sigs.k8s.io/knftables"
)

// The table's fixed objects (a full sync's skeleton): the table with its
// comment, base chains, commented chains, named sets and verdict maps with
// typed keys, and named counters. Like rules, their shapes are closed to
// what kproxy's table declares, each encoded as nft 1.0.6 sends it.

// Chain declares a chain: a regular one (optionally commented) or, with
// Hook, a base chain. Adding a chain that exists changes nothing.
type Chain struct {
	Name    string
	Comment string
	Hook    *Hook
}

// Hook attaches a base chain: type, hook and priority as knftables names
// them (a priority may be a name with an offset, "dstnat-10").
type Hook struct {
	Type     knftables.BaseChainType
	Hook     knftables.BaseChainHook
	Priority knftables.BaseChainPriority
}

// KeyField is the type of one field of a named set's key.
type KeyField uint8

const (
	// KeyAddr is the table's address type (ipv4_addr or ipv6_addr).
	KeyAddr KeyField = iota + 1
	// KeyProto is inet_proto.
	KeyProto
	// KeyPort is inet_service.
	KeyPort
)

// Set declares a named set or, with Verdicts, a verdict map. The key is
// one address, or a concatenation of fields (a map's key always is).
type Set struct {
	Name     string
	Key      []KeyField
	Verdicts bool
	Comment  string
}

// AddTable adds the batch's table, with a comment unless it is empty
// (nothing happens to a table that exists but its comment).
func (b *Batch) AddTable(comment string) {
	b.ops = append(b.ops, op{kind: opAddTable, name: b.table, comment: comment})
}

// DeclareChain adds a chain as c declares it.
func (b *Batch) DeclareChain(c Chain) {
	b.ops = append(b.ops, op{kind: opDeclareChain, name: c.Name, chain: &c})
}

// DeclareSet adds a named set or map as s declares it (nothing happens if
// it exists with the same declaration).
func (b *Batch) DeclareSet(s Set) {
	s.Key = append([]KeyField(nil), s.Key...)
	b.ops = append(b.ops, op{kind: opDeclareSet, name: s.Name, set: &s, isMap: s.Verdicts})
}

// DeleteMap deletes a named map no rule refers to.
func (b *Batch) DeleteMap(name string) {
	b.ops = append(b.ops, op{kind: opDeleteSet, name: name, isMap: true})
}

// AddCounter adds a named counter; DeleteCounter deletes one.
func (b *Batch) AddCounter(name string) { b.ops = append(b.ops, op{kind: opAddCounter, name: name}) }

// DeleteCounter deletes a named counter no rule refers to.
func (b *Batch) DeleteCounter(name string) {
	b.ops = append(b.ops, op{kind: opDeleteCounter, name: name})
}

// objectLine is an object operation's nft command, in knftables' format;
// ok is false for other operations.
func (b *Batch) objectLine(o *op) (line string, ok bool) {
	fam := b.fam.IP()
	where := fam + " " + b.table + " " + o.name
	switch o.kind {
	case opAddTable:
		if o.comment == "" {
			return "add table " + fam + " " + b.table, true
		}
		return fmt.Sprintf("add table %s %s { comment %q ; }", fam, b.table, o.comment), true
	case opDeclareChain:
		return "add chain " + where + b.chainBody(o.chain), true
	case opDeclareSet:
		verb := "add set "
		if o.set.Verdicts {
			verb = "add map "
		}
		return verb + where + " { type " + b.keyTypeText(o.set) + " ;" + commentText(o.set.Comment) + " }", true
	case opAddCounter:
		return "add counter " + where, true
	case opDeleteCounter:
		return "delete counter " + where, true
	}
	return "", false
}

// chainBody is what follows a chain's name in its add command.
func (b *Batch) chainBody(c *Chain) string {
	if c.Hook == nil && c.Comment == "" {
		return ""
	}
	var s strings.Builder
	s.WriteString(" {")
	if h := c.Hook; h != nil {
		fmt.Fprintf(&s, " type %s hook %s", h.Type, h.Hook)
		if prio, err := knftables.ParsePriority(knftables.Family(b.fam.IP()), string(h.Priority)); err == nil {
			fmt.Fprintf(&s, " priority %d ;", prio)
		} else {
			fmt.Fprintf(&s, " priority %s ;", h.Priority)
		}
	}
	s.WriteString(commentText(c.Comment))
	s.WriteString(" }")
	return s.String()
}

func commentText(c string) string {
	if c == "" {
		return ""
	}
	return fmt.Sprintf(" comment %q ;", c)
}

// keyTypeText is s's type as nft writes it: "ipv4_addr . inet_proto .
// inet_service", with " : verdict" for a map.
func (b *Batch) keyTypeText(s *Set) string {
	parts := make([]string, len(s.Key))
	for i, k := range s.Key {
		switch k {
		case KeyAddr:
			parts[i] = b.fam.addrTypeName()
		case KeyProto:
			parts[i] = "inet_proto"
		case KeyPort:
			parts[i] = "inet_service"
		default:
			parts[i] = "?"
		}
	}
	t := strings.Join(parts, " . ")
	if s.Verdicts {
		t += " : verdict"
	}
	return t
}

// appendObject adds an object operation to tx as knftables objects; ok is
// false for other operations.
func (b *Batch) appendObject(tx *knftables.Transaction, o *op) (ok bool) {
	switch o.kind {
	case opAddTable:
		tx.Add(&knftables.Table{Comment: optional(o.comment)})
	case opDeclareChain:
		c := &knftables.Chain{Name: o.name, Comment: optional(o.chain.Comment)}
		if h := o.chain.Hook; h != nil {
			c.Type, c.Hook, c.Priority = &h.Type, &h.Hook, &h.Priority
		}
		tx.Add(c)
	case opDeclareSet:
		if o.set.Verdicts {
			tx.Add(&knftables.Map{Name: o.name, Type: b.keyTypeText(o.set), Comment: optional(o.set.Comment)})
		} else {
			tx.Add(&knftables.Set{Name: o.name, Type: b.keyTypeText(o.set), Comment: optional(o.set.Comment)})
		}
	case opAddCounter:
		tx.Add(&knftables.Counter{Name: o.name})
	case opDeleteCounter:
		tx.Delete(&knftables.Counter{Name: o.name})
	default:
		return false
	}
	return true
}

// optional is nil for "", else a pointer to s (knftables' optional text).
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
