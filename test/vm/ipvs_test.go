package vm_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kproxy/kproxy/test/vm"
)

// ipvsKernelPackages hold the TestKernel* tests of IPVS mode: each seam's
// differential test against its fake, and the Proxier's over all of them.
var ipvsKernelPackages = []string{"./ipvs", "./ipvs/vs", "./ipvs/addresses", "./ipvs/ipset", "./ipvs/startup"}

// TestIPVSKernel runs the TestKernel* tests of ipvs/ and its subpackages in
// one guest, whose kernel has IPVS, and requires every one of them to pass
// (none skipped).
func TestIPVSKernel(t *testing.T) {
	assets := assetsForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	res, err := vm.RunGoTests(ctx, ipvsKernelPackages, "^TestKernel", vm.Options{Assets: assets, Timeout: 5 * time.Minute,
		Env: []string{"KPROXY_KERNEL_TESTS=require"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ipvs kernel tests in the guest took %v (boot included)", res.Duration.Round(time.Millisecond))
	for _, name := range []string{"TestKernelSyncMatchesFake", "TestKernelPartialSyncAndRestart",
		"TestKernelSchedulerFlagsRoundTrip", "TestKernelIPSetAndRules", // ipvs
		"TestKernelRejectsWhatTheFakeRejects", "TestKernelTimeoutsMatchTheFake",
		"TestKernelHasIPVS",                                                  // ipvs/vs
		"TestKernelAddressesMatchTheFake",                                    // ipvs/addresses
		"TestKernelIPSetAgreesWithTheFake",                                   // ipvs/ipset
		"TestKernelStartupSettingsInNamespace", "TestKernelProbeScheduler"} { // ipvs/startup
		if !strings.Contains(res.Output, "--- PASS: "+name+" ") {
			t.Errorf("%s did not pass in the guest", name)
		}
	}
	if !res.Passed || t.Failed() {
		t.Errorf("guest test binary exit code %d; console:\n%s", res.ExitCode, res.Output)
	}
}
