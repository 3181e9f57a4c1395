package vm_test

import (
	"regexp"
	"testing"
)

// TestFaultConntrackFullInGuest runs test/e2e's TestFaultConntrackTableFull
// in the guest: it lowers nf_conntrack_max, which the host keeps read-only
// in network namespaces and which no test may change on the host.
func TestFaultConntrackFullInGuest(t *testing.T) {
	logFaultLines(t, runE2EInGuest(t, []string{"TestFaultConntrackTableFull"}, ""))
}

// TestFaultsIPVSModeInGuest runs the fault tests that hold for both modes
// with kproxy --proxy-mode ipvs (this machine's kernel has no IPVS): the
// tamper monitor (a nat-only flush, a firewalld-style KUBE-SERVICES
// deletion) and the full conntrack table.
func TestFaultsIPVSModeInGuest(t *testing.T) {
	logFaultLines(t, runE2EInGuest(t, []string{"TestFaultRulesRemovedBehindKproxysBack", "TestFaultConntrackTableFull"},
		"", "KPROXY_E2E_PROXY_MODE=ipvs"))
}

// logFaultLines repeats the guest's "fault ...: N new connections tried"
// lines in the host's test log.
func logFaultLines(t *testing.T, out string) {
	t.Helper()
	for _, m := range regexp.MustCompile(`(?m)^\s*fault_\w+_test\.go:\d+: (fault .*)$`).FindAllStringSubmatch(out, -1) {
		t.Logf("guest: %s", m[1])
	}
}
