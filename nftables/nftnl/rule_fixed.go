package nftnl

import (
	"net/netip"
	"strings"
)

// The rule shapes of the table's fixed chains (a full sync's skeleton),
// beside the per-service shapes of rule.go; the text of each is what
// kproxy writes for nft -f.

// PacketField is a field of the packet a lookup key is built from.
type PacketField uint8

const (
	// Saddr and Daddr are the source and destination address ("ip saddr").
	Saddr PacketField = iota + 1
	Daddr
	// L4Proto is the layer 4 protocol ("meta l4proto").
	L4Proto
	// Dport is the transport destination port ("th dport").
	Dport
)

func (p PacketField) text(f Family) string {
	switch p {
	case Saddr:
		return f.IP() + " saddr"
	case Daddr:
		return f.IP() + " daddr"
	case L4Proto:
		return "meta l4proto"
	case Dport:
		return "th dport"
	}
	return "?"
}

func fieldsText(fields []PacketField, f Family) string {
	parts := make([]string, len(fields))
	for i, p := range fields {
		parts[i] = p.text(f)
	}
	return strings.Join(parts, " . ")
}

// All matches when each of its matches does, in order ("ip daddr
// @cluster-ips ip saddr != 10.0.0.0/8").
type All []Match

// CtStateNew matches a connection's first packet ("ct state new").
type CtStateNew struct{}

// CtStatusDNAT matches a destination-NATed connection ("ct status dnat").
type CtStatusDNAT struct{}

// MarkAny matches a packet mark with a bit of Mark set ("mark and 0x4000
// != 0"; Mark as MarkOr's).
type MarkAny struct{ Mark string }

// InSet matches the key built of Fields in the named set ("ip daddr @S",
// "ip saddr . ip daddr . meta l4proto . th dport @S").
type InSet struct {
	Fields []PacketField
	Set    string
}

// DaddrIn matches a destination address in one of Prefixes ("ip daddr {
// 10.96.0.0/12,fd00::/108 }", no spaces after commas; at least one).
type DaddrIn struct{ Prefixes []netip.Prefix }

// DaddrNot matches a destination address outside Prefix ("ip daddr !=
// 127.0.0.0/8"; a single address is written without its length: "ip6
// daddr != ::1").
type DaddrNot struct{ Prefix netip.Prefix }

// SaddrNot matches a source address outside Prefix ("ip saddr !=
// 10.0.0.0/8"; the local detector's "not from a pod").
type SaddrNot struct{ Prefix netip.Prefix }

// IifNameNot matches another input interface than Name ("iifname !=
// br0"; "veth*" is every name with that prefix).
type IifNameNot struct{ Name string }

// FibDaddrLocal matches a destination address local to the node ("fib
// daddr type local").
type FibDaddrLocal struct{}

func (m All) text(f Family) string {
	parts := make([]string, len(m))
	for i, x := range m {
		parts[i] = "<nil>"
		if x != nil {
			parts[i] = x.text(f)
		}
	}
	return strings.Join(parts, " ")
}
func (CtStateNew) text(Family) string   { return "ct state new" }
func (CtStatusDNAT) text(Family) string { return "ct status dnat" }
func (m MarkAny) text(Family) string    { return "mark and " + m.Mark + " != 0" }
func (m InSet) text(f Family) string    { return fieldsText(m.Fields, f) + " @" + m.Set }
func (m DaddrIn) text(f Family) string {
	parts := make([]string, len(m.Prefixes))
	for i, p := range m.Prefixes {
		parts[i] = p.String()
	}
	return f.IP() + " daddr { " + strings.Join(parts, ",") + " }"
}
func (m DaddrNot) text(f Family) string {
	p := m.Prefix.String()
	if m.Prefix.IsValid() && m.Prefix.IsSingleIP() {
		p = m.Prefix.Addr().String()
	}
	return f.IP() + " daddr != " + p
}
func (m SaddrNot) text(f Family) string  { return f.IP() + " saddr != " + m.Prefix.String() }
func (m IifNameNot) text(Family) string  { return "iifname != " + m.Name }
func (FibDaddrLocal) text(Family) string { return "fib daddr type local" }

func (All) match()           {}
func (CtStateNew) match()    {}
func (CtStatusDNAT) match()  {}
func (MarkAny) match()       {}
func (InSet) match()         {}
func (DaddrIn) match()       {}
func (DaddrNot) match()      {}
func (SaddrNot) match()      {}
func (IifNameNot) match()    {}
func (FibDaddrLocal) match() {}

// Seq runs its statements in order ("mark set mark xor 0x4000 masquerade
// fully-random").
type Seq []Stmt

// Jump jumps to Chain and comes back ("jump C").
type Jump struct{ Chain string }

// Reject rejects the packet with nft's default for the family (ICMP or
// ICMPv6 port unreachable: "reject").
type Reject struct{}

// Masquerade masquerades with fully random source ports ("masquerade
// fully-random").
type Masquerade struct{}

// MarkXor flips Mark's bits in the packet mark ("mark set mark xor
// 0x4000"; Mark as MarkOr's).
type MarkXor struct{ Mark string }

// Vmap looks the key built of Fields up in the named verdict map ("ip
// daddr . meta l4proto . th dport vmap @M").
type Vmap struct {
	Fields []PacketField
	Map    string
}

func (s Seq) text(f Family) string {
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = "<nil>"
		if x != nil {
			parts[i] = x.text(f)
		}
	}
	return strings.Join(parts, " ")
}
func (s Jump) text(Family) string     { return "jump " + s.Chain }
func (Reject) text(Family) string     { return "reject" }
func (Masquerade) text(Family) string { return "masquerade fully-random" }
func (s MarkXor) text(Family) string  { return "mark set mark xor " + s.Mark }
func (s Vmap) text(f Family) string   { return fieldsText(s.Fields, f) + " vmap @" + s.Map }

func (Seq) stmt()        {}
func (Jump) stmt()       {}
func (Reject) stmt()     {}
func (Masquerade) stmt() {}
func (MarkXor) stmt()    {}
func (Vmap) stmt()       {}
