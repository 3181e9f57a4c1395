package vm_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kproxy/kproxy/test/vm"
)

// ipvsE2ETests run in the guest with kproxy --proxy-mode ipvs. The first
// ones are iptables-mode e2e tests whose assertions are about traffic only,
// so they hold for IPVS mode unchanged.
var ipvsE2ETests = []string{"TestClusterIPSpreadsAndKeepsPodSource", "TestNodePortReachesAllEndpointsMasqueraded",
	"TestExternalIPReachableFromOutside", "TestExternalLocalKeepsClientSourceAndReportsHealth",
	"TestSCTPClusterIP", "TestInternalLocalReachesOnlyLocalEndpoints", "TestConntrackSysctlsFromConfig",
	// test/e2e/ipvs_*_test.go: IPVS-only tests (they skip outside IPVS mode).
	"TestIPVSSessionAffinityIsPersistence", "TestIPVSGracefulTermination", "TestIPVSCleanupFlag",
	"TestIPVSLoadBalancerSourceRanges", "TestIPVSRoundRobinSpread", "TestIPVSSourceHashScheduler",
	"TestIPVSExternalLocalFallsBackWithoutLocalEndpoints", "TestIPVSRestartUnderTraffic",
	"TestIPVSAdmAndIPSetListing", "TestIPVSIPv6ClusterIP", "TestIPVSUnparseableSourceRangesFailClosed"}

// TestIPVSModeTrafficInGuest runs kproxy --proxy-mode ipvs in the guest's
// namespace worlds and sends real traffic through IPVS virtual servers.
//
// Unlike runE2EInGuest it gives the guest 2 vCPUs (so the test binary runs
// 2 tests at a time) and a longer timeout: the list takes about 7 minutes
// on one emulated CPU, 4.5 on two.
func TestIPVSModeTrafficInGuest(t *testing.T) {
	assets := assetsForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dir := t.TempDir()
	var extra []vm.File
	for _, b := range []struct{ pkg, guest string }{{"./cmd/kproxy", "kproxy"}, {"./test/podserver", "podserver"}} {
		bin, err := vm.BuildStatic(ctx, b.pkg, dir, false)
		if err != nil {
			t.Fatal(err)
		}
		extra = append(extra, vm.File{Path: "/kpx/tools/" + b.guest, Source: bin, Mode: 0o755})
	}
	res, err := vm.RunGoTest(ctx, "./test/e2e", "^("+strings.Join(ipvsE2ETests, "|")+")$", vm.Options{
		Assets: assets, Timeout: 11 * time.Minute, Memory: "2G", CPUs: 2, Extra: extra,
		Env: []string{"KPROXY_BIN=/kpx/tools/kproxy", "KPROXY_PODSERVER_BIN=/kpx/tools/podserver",
			"KPROXY_KERNEL_TESTS=require", "KPROXY_E2E_PROXY_MODE=ipvs"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range ipvsE2ETests {
		if !strings.Contains(res.Output, "--- PASS: "+name+" ") {
			t.Errorf("%s did not pass in the guest", name)
		}
	}
	if !res.Passed || t.Failed() {
		t.Fatalf("e2e tests in the guest:\n%s", tail(res.Output, 400))
	}
	for _, m := range regexp.MustCompile(`(?m)^--- PASS: (\S+ \(\S+\))$`).FindAllStringSubmatch(res.Output, -1) {
		t.Logf("  %s", m[1])
	}
	t.Logf("%d IPVS-mode e2e tests passed in the guest in %v (boot included)", len(ipvsE2ETests),
		res.Duration.Round(time.Millisecond))
}
