package nftnl

import (
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Family is a table's family.
type Family uint8

const (
	IPv4 Family = unix.NFPROTO_IPV4
	IPv6 Family = unix.NFPROTO_IPV6
)

// IP is the family's nft keyword for its network header: "ip" or "ip6".
func (f Family) IP() string {
	if f == IPv6 {
		return "ip6"
	}
	return "ip"
}

// Rule is one rule of a per-service chain or of a fixed chain in kproxy's
// nftables table: an optional match, one statement and a comment. The set
// of shapes is closed (the Match and Stmt types of this file and of
// rule_fixed.go): each knows its nft text (what knftables writes with nft
// -f) and its netlink expressions, and the two must list identically.
type Rule struct {
	Match   Match // nil: no match
	Stmt    Stmt
	Comment string
}

// Text is the rule as nft text, without its comment. A rule without a
// statement (which encoding refuses) still has a text, for its error.
func (r Rule) Text(f Family) string {
	stmt := "<no statement>"
	if r.Stmt != nil {
		stmt = r.Stmt.text(f)
	}
	if r.Match == nil {
		return stmt
	}
	return r.Match.text(f) + " " + stmt
}

// Equal reports whether r and o are the same rule.
func (r Rule) Equal(o Rule, f Family) bool {
	return r.Comment == o.Comment && r.Text(f) == o.Text(f)
}

// LooksUpMap reports whether r sends packets through an anonymous map
// (NumgenDNAT, NumgenGoto). When a transaction deletes such a rule, the
// kernel marks the map's elements inactive in the new generation at once,
// while a packet that began on the old rules may still look the map up:
// the lookup misses and the packet falls through the chain.
func (r Rule) LooksUpMap() bool {
	switch r.Stmt.(type) {
	case NumgenDNAT, NumgenGoto:
		return true
	}
	return false
}

// Match is a rule's match: SaddrPrefix, IifName, FibSaddrLocal,
// SaddrInSet or SaddrNotIn, or one of rule_fixed.go's.
type Match interface {
	text(f Family) string
	match()
}

// Stmt is a rule's statement: Goto, Drop, MarkOr, DNAT, NumgenDNAT,
// NumgenGoto or AffinityUpdate, or one of rule_fixed.go's.
type Stmt interface {
	text(f Family) string
	stmt()
}

// SaddrPrefix matches a source address in Prefix ("ip saddr 10.0.0.0/8";
// the local detector's CIDR). Prefix is masked.
type SaddrPrefix struct{ Prefix netip.Prefix }

// IifName matches the input interface ("iifname br0"); a trailing "*" in
// Name matches every name with that prefix ("iifname veth*").
type IifName struct{ Name string }

// FibSaddrLocal matches a source address local to the node ("fib saddr
// type local").
type FibSaddrLocal struct{}

// SaddrInSet matches a source address in the named set ("ip saddr @S").
type SaddrInSet struct{ Set string }

// SaddrNotIn matches a source address outside Prefixes and Addrs
// ("ip saddr != { 10.0.0.0/8 , 192.0.2.1 }", prefixes first; at least one
// entry). Overlapping entries are allowed (nft merges them).
type SaddrNotIn struct {
	Prefixes []netip.Prefix
	Addrs    []netip.Addr
}

func (m SaddrPrefix) text(f Family) string { return f.IP() + " saddr " + m.Prefix.String() }
func (m IifName) text(Family) string       { return "iifname " + m.Name }
func (FibSaddrLocal) text(Family) string   { return "fib saddr type local" }
func (m SaddrInSet) text(f Family) string  { return f.IP() + " saddr @" + m.Set }
func (m SaddrNotIn) text(f Family) string {
	var b strings.Builder
	b.WriteString(f.IP() + " saddr != { ")
	n := 0
	sep := func() {
		if n > 0 {
			b.WriteString(" , ")
		}
		n++
	}
	for _, p := range m.Prefixes {
		sep()
		b.WriteString(p.String())
	}
	for _, a := range m.Addrs {
		sep()
		b.WriteString(a.String())
	}
	b.WriteString(" }")
	return b.String()
}

func (SaddrPrefix) match()   {}
func (IifName) match()       {}
func (FibSaddrLocal) match() {}
func (SaddrInSet) match()    {}
func (SaddrNotIn) match()    {}

// Goto jumps to Chain for good ("goto C").
type Goto struct{ Chain string }

// Drop drops the packet ("drop").
type Drop struct{}

// MarkOr ors Mark (a 32-bit value written in hex, "0x4000" or
// "0x00004000", printed as given) into the packet mark ("mark set mark or
// 0x4000").
type MarkOr struct{ Mark string }

// DNAT matches the L4 protocol (tcp, udp, sctp) and DNATs to one endpoint
// ("meta l4proto tcp dnat to 10.0.0.1:80", "[fd00::1]:80" for IPv6).
type DNAT struct {
	Proto string
	To    netip.AddrPort
}

// NumgenDNAT matches the L4 protocol and DNATs to one of To at random
// ("meta l4proto tcp dnat ip addr . port to numgen random mod 2 map
// { 0 : 10.0.0.1 . 80 , 1 : 10.0.0.2 . 80 }"; at least two entries).
type NumgenDNAT struct {
	Proto string
	To    []netip.AddrPort
}

// NumgenGoto jumps to one of Chains at random ("numgen random mod 2 vmap
// { 0 : goto A , 1 : goto B }"; at least one entry).
type NumgenGoto struct{ Chains []string }

// AffinityUpdate adds or refreshes the source address in the named
// dynamic set ("update @S { ip saddr }").
type AffinityUpdate struct{ Set string }

func (s Goto) text(Family) string   { return "goto " + s.Chain }
func (Drop) text(Family) string     { return "drop" }
func (s MarkOr) text(Family) string { return "mark set mark or " + s.Mark }
func (s DNAT) text(Family) string   { return "meta l4proto " + s.Proto + " dnat to " + s.To.String() }
func (s NumgenDNAT) text(f Family) string {
	var b strings.Builder
	b.WriteString("meta l4proto " + s.Proto + " dnat " + f.IP() + " addr . port to numgen random mod " +
		strconv.Itoa(len(s.To)) + " map { ")
	for i, ep := range s.To {
		if i > 0 {
			b.WriteString(" , ")
		}
		b.WriteString(strconv.Itoa(i) + " : " + ep.Addr().String() + " . " + strconv.Itoa(int(ep.Port())))
	}
	b.WriteString(" }")
	return b.String()
}
func (s NumgenGoto) text(Family) string {
	var b strings.Builder
	b.WriteString("numgen random mod " + strconv.Itoa(len(s.Chains)) + " vmap { ")
	for i, c := range s.Chains {
		if i > 0 {
			b.WriteString(" , ")
		}
		b.WriteString(strconv.Itoa(i) + " : goto " + c)
	}
	b.WriteString(" }")
	return b.String()
}
func (s AffinityUpdate) text(f Family) string {
	return "update @" + s.Set + " { " + f.IP() + " saddr }"
}

func (Goto) stmt()           {}
func (Drop) stmt()           {}
func (MarkOr) stmt()         {}
func (DNAT) stmt()           {}
func (NumgenDNAT) stmt()     {}
func (NumgenGoto) stmt()     {}
func (AffinityUpdate) stmt() {}
