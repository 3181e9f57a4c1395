package ruleset

import (
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// MaxChainNameLen is the longest chain name the kernel accepts
// (XT_EXTENSION_MAXNAMELEN - 1).
const MaxChainNameLen = 28

// PolicyNone is the policy column of a user-defined chain in iptables-save
// output and in restore declarations (":CHAIN - [0:0]").
const PolicyNone = "-"

// Table is one iptables table of one address family.
type Table struct {
	Name string
	// Chains lists built-in chains first, in hook order, then user-defined
	// chains sorted by name, as iptables-save prints them.
	Chains []*Chain
}

// Chain is one chain and its rules in evaluation order.
type Chain struct {
	Name string
	// Policy is ACCEPT or DROP for a built-in chain and PolicyNone for a user chain.
	Policy string
	Rules  []Rule
}

// Chain returns the named chain, or nil.
func (t *Table) Chain(name string) *Chain {
	for _, c := range t.Chains {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// RuleCount is the number of rules in all chains of the table.
func (t *Table) RuleCount() int {
	n := 0
	for _, c := range t.Chains {
		n += len(c.Rules)
	}
	return n
}

// BuiltIn reports whether the chain is one of its table's built-in chains.
func (c *Chain) BuiltIn() bool { return c.Policy != PolicyNone }

// builtinChains lists each known table's built-in chains in hook order, the
// order iptables-save prints them in.
var builtinChains = map[string][]string{
	"filter":   {"INPUT", "FORWARD", "OUTPUT"},
	"nat":      {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	"mangle":   {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	"raw":      {"PREROUTING", "OUTPUT"},
	"security": {"INPUT", "FORWARD", "OUTPUT"},
}

// BuiltinChains returns the built-in chains of a table in hook order, or nil
// for an unknown table.
func BuiltinChains(table string) []string {
	return slices.Clone(builtinChains[table])
}

// KnownTable reports whether the kernel has a table of that name.
func KnownTable(table string) bool {
	_, ok := builtinChains[table]
	return ok
}

func isBuiltin(table, chain string) bool {
	return slices.Contains(builtinChains[table], chain)
}

// newTable returns a table holding only its built-in chains, with policy ACCEPT.
func newTable(name string) *Table {
	t := &Table{Name: name}
	for _, c := range builtinChains[name] {
		t.Chains = append(t.Chains, &Chain{Name: c, Policy: "ACCEPT"})
	}
	return t
}

// sortChains puts built-in chains first in hook order and user chains after
// them sorted by name.
func sortChains(table string, chains []*Chain) {
	order := builtinChains[table]
	rank := func(c *Chain) int {
		if i := slices.Index(order, c.Name); i >= 0 {
			return i
		}
		return len(order)
	}
	slices.SortStableFunc(chains, func(a, b *Chain) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// Clone copies the table and its chains; rules are shared because nothing
// mutates a parsed Rule.
func (t *Table) Clone() *Table {
	out := &Table{Name: t.Name, Chains: make([]*Chain, len(t.Chains))}
	for i, c := range t.Chains {
		out.Chains[i] = c.clone()
	}
	return out
}

func (c *Chain) clone() *Chain {
	return &Chain{Name: c.Name, Policy: c.Policy, Rules: slices.Clone(c.Rules)}
}

// fullMask is the all-ones address of a family, the default mask of the
// recent match.
func fullMask(family v1.IPFamily) string {
	if family == v1.IPv6Protocol {
		return "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
	}
	return "255.255.255.255"
}
