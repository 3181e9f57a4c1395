package netfilter_test

import (
	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
	"github.com/kproxy/kproxy/proxier/netfilter/xtables"
)

// Both kernel seams implement the contract (checked here: neither imports
// the core, so that the core's users may depend on them).
var (
	_ netfilter.Restorer    = (*ruleset.Fake)(nil)
	_ netfilter.Restorer    = (*xtables.Runner)(nil)
	_ netfilter.ChainLister = (*ruleset.Fake)(nil)
	_ netfilter.ChainLister = (*xtables.Runner)(nil)
)
