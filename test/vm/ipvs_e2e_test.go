package vm_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kproxy/kproxy/test/vm"
)

// ipvsE2ETests are the iptables-mode e2e tests whose assertions are about
// traffic only, so they hold for IPVS mode unchanged.
var ipvsE2ETests = []string{"TestClusterIPSpreadsAndKeepsPodSource", "TestNodePortReachesAllEndpointsMasqueraded",
	// test/e2e/ipvs_mode_test.go: IPVS-only tests (they skip outside IPVS mode).
	"TestIPVSSessionAffinityIsPersistence", "TestIPVSGracefulTermination", "TestIPVSCleanupFlag"}

// TestIPVSModeTrafficInGuest runs kproxy --proxy-mode ipvs in the guest's
// namespace world and sends real traffic through IPVS virtual servers.
func TestIPVSModeTrafficInGuest(t *testing.T) {
	assets := assetsForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	dir := t.TempDir()
	kproxy, err := vm.BuildStatic(ctx, "./cmd/kproxy", dir, false)
	if err != nil {
		t.Fatal(err)
	}
	podserver, err := vm.BuildStatic(ctx, "./test/podserver", dir, false)
	if err != nil {
		t.Fatal(err)
	}
	res, err := vm.RunGoTest(ctx, "./test/e2e", "^("+strings.Join(ipvsE2ETests, "|")+")$", vm.Options{
		Assets: assets, Timeout: 5 * time.Minute, Memory: "1500M",
		Extra: []vm.File{
			{Path: "/kpx/tools/kproxy", Source: kproxy, Mode: 0o755},
			{Path: "/kpx/tools/podserver", Source: podserver, Mode: 0o755},
		},
		Env: []string{"KPROXY_BIN=/kpx/tools/kproxy", "KPROXY_PODSERVER_BIN=/kpx/tools/podserver",
			"KPROXY_KERNEL_TESTS=require", "KPROXY_E2E_PROXY_MODE=ipvs"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range ipvsE2ETests {
		if !strings.Contains(res.Output, "--- PASS: "+name) {
			t.Errorf("%s did not pass in IPVS mode", name)
		}
	}
	if !res.Passed || t.Failed() {
		t.Fatalf("IPVS-mode e2e tests in the guest:\n%s", tail(res.Output, 400))
	}
}
