package iptables_test

import (
	"github.com/kproxy/kproxy/iptables"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
	"github.com/kproxy/kproxy/proxier/netfilter/xtables"
)

// Both kernel seams implement the contract (checked here: they cannot import iptables without a cycle).
var (
	_ iptables.Restorer = (*ruleset.Fake)(nil)
	_ iptables.Restorer = (*xtables.Runner)(nil)
)
