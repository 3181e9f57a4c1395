package iptables_test

import (
	"github.com/kproxy/kproxy/iptables"
	"github.com/kproxy/kproxy/iptables/kernel"
	"github.com/kproxy/kproxy/iptables/ruleset"
)

// Both kernel seams implement the contract (checked here: they cannot import iptables without a cycle).
var (
	_ iptables.Restorer = (*ruleset.Fake)(nil)
	_ iptables.Restorer = (*kernel.Runner)(nil)
)
