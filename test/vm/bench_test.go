package vm_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kproxy/kproxy/test/kerneltest"
	"github.com/kproxy/kproxy/test/vm"
)

// TestBenchInGuestSmoke runs the IPVS/iptables benchmark plumbing (make
// bench-ipvs) at a toy scale: 20 services, one round, both modes in one
// guest, and requires both tables, the comparison and the IPVS partial-sync
// check to come back. It takes 25 s on an idle machine and over 35 s on a
// loaded one (software emulation), past the suite's budget for it, so it
// runs only with KPROXY_VM_BENCH_SMOKE=1.
func TestBenchInGuestSmoke(t *testing.T) {
	kerneltest.OptIn(t, "KPROXY_VM_BENCH_SMOKE", "benchmark plumbing smoke test (25-35 s in the qemu guest)")
	assets := assetsForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := vm.RunBench(ctx, vm.BenchOptions{Scales: []vm.BenchScale{{Services: 20, Rounds: 1}},
		Skip: []string{"resync", "restart", "plain"}, Partials: 1, Memory: "1G", Timeout: 2 * time.Minute, Assets: assets})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 {
		t.Fatalf("RunBench returned %d results, want 1", len(res))
	}
	r := res[0]
	t.Logf("benchmark guest took %v:\n%s", r.Duration.Round(time.Millisecond), r.Report)
	for _, want := range []string{"kproxy ipvs sync: 20 services", "kproxy iptables sync: 20 services",
		"ipvs vs iptables, same run", "ipvs partial syncs: ok"} {
		if !strings.Contains(r.Report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if !r.Passed {
		t.Errorf("kpx-bench failed in the guest")
	}
}
