package iptables_test

import (
	"net/netip"
	"testing"

	"github.com/kproxy/kproxy/proxier"
)

// TestSourceRangesInvalidIsAChange checks that a range becoming unparseable
// is a change of the service port, so a partial sync rewrites it.
func TestSourceRangesInvalidIsAChange(t *testing.T) {
	a := proxier.ServicePort{LoadBalancerSourceRanges: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	b := a
	b.LoadBalancerSourceRangesInvalid = true
	if a.Equal(&b) {
		t.Error("Equal ignores LoadBalancerSourceRangesInvalid")
	}
	if !(&proxier.ServicePort{LoadBalancerSourceRangesInvalid: true}).FirewallRequired() || (&proxier.ServicePort{}).FirewallRequired() {
		t.Error("FirewallRequired must follow the ranges and the invalid flag")
	}
}
