package iptables

import (
	"context"
	"fmt"

	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// Single-chain listings, the read step's way around iptables-save of a
// large nat table (see kernel_read.go).

// jumpChains are the chains to list in a table: the built-in chains holding
// jump rules, their targets (KUBE-FIREWALL must not be flushed if it
// exists), the top-level chains whose targets reveal service chains, and
// the canary.
func jumpChains(table string) []string {
	var out []string
	add := func(c string) {
		if !containsName(out, c) {
			out = append(out, c)
		}
	}
	for _, j := range netfilter.IPTablesJumpRules() {
		if j.Table == table {
			add(j.From)
			add(j.To)
		}
	}
	if table == "nat" {
		add(netfilter.NodePortsChain)
		add(netfilter.CanaryChain)
	}
	return out
}

// listChains reads the named chains into a partial SavedTable; chains that
// do not exist are absent from it.
func listChains(ctx context.Context, l netfilter.ChainLister, table string, chains []string) (*ruleset.SavedTable, error) {
	t := ruleset.NewSavedTable()
	for _, c := range chains {
		if err := listInto(ctx, l, table, c, t); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func listInto(ctx context.Context, l netfilter.ChainLister, table, chain string, t *ruleset.SavedTable) error {
	data, err := l.ListChain(ctx, table, chain)
	if err != nil {
		return fmt.Errorf("list %s chain %s: %w", table, chain, err)
	}
	t.Add(data)
	return nil
}

// findStaleChains walks, from the listed top-level nat chains, the service
// chains they jump to that the snapshot no longer needs, listing each so its
// own targets (down to KUBE-SEP) are found too. Active chains are never
// listed, so the walk is proportional to what went away, not to the cluster.
func findStaleChains(ctx context.Context, l netfilter.ChainLister, nat *ruleset.SavedTable, active map[string]*portState) error {
	listed := 0
	for i := 0; i < len(nat.Rules) && listed < maxStaleListings; i++ {
		target := nat.Rules[i].Target
		if !netfilter.IsServiceChainName(target) || nat.HasChain(target) {
			continue
		}
		if _, ok := active[target]; ok {
			continue
		}
		if err := listInto(ctx, l, "nat", target, nat); err != nil {
			return err
		}
		listed++
	}
	return nil
}

func containsName(names []string, n string) bool {
	for _, x := range names {
		if x == n {
			return true
		}
	}
	return false
}
