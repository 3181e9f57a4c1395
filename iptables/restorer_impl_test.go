package iptables_test

import (
	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
	"github.com/kproxy/kproxy/proxier/netfilter/xtables"
)

// Both kernel seams implement the contract (checked here: they cannot import iptables without a cycle).
var (
	_ netfilter.Restorer = (*ruleset.Fake)(nil)
	_ netfilter.Restorer = (*xtables.Runner)(nil)
)
