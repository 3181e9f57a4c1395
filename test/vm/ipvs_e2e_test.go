package vm_test

import "testing"

// ipvsE2ETests are the iptables-mode e2e tests whose assertions are about
// traffic only, so they hold for IPVS mode unchanged.
var ipvsE2ETests = []string{"TestClusterIPSpreadsAndKeepsPodSource", "TestNodePortReachesAllEndpointsMasqueraded",
	// test/e2e/ipvs_mode_test.go: IPVS-only tests (they skip outside IPVS mode).
	"TestIPVSSessionAffinityIsPersistence", "TestIPVSGracefulTermination", "TestIPVSCleanupFlag"}

// TestIPVSModeTrafficInGuest runs kproxy --proxy-mode ipvs in the guest's
// namespace world and sends real traffic through IPVS virtual servers.
func TestIPVSModeTrafficInGuest(t *testing.T) {
	runE2EInGuest(t, ipvsE2ETests, "1500M", "KPROXY_E2E_PROXY_MODE=ipvs")
}
