package vm_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kproxy/kproxy/test/vm"
)

// TestSCTPTrafficInGuest runs the iptables-mode SCTP e2e test inside the
// guest, whose kernel has SCTP sockets (this machine's has none): kproxy and
// the pod servers are built here and handed in, and the test must pass, not skip.
func TestSCTPTrafficInGuest(t *testing.T) {
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
	res, err := vm.RunGoTest(ctx, "./test/e2e", "^TestSCTPClusterIP$", vm.Options{
		Assets: assets, Timeout: 5 * time.Minute,
		Extra: []vm.File{
			{Path: "/kpx/tools/kproxy", Source: kproxy, Mode: 0o755},
			{Path: "/kpx/tools/podserver", Source: podserver, Mode: 0o755},
		},
		Env: []string{"KPROXY_BIN=/kpx/tools/kproxy", "KPROXY_PODSERVER_BIN=/kpx/tools/podserver",
			"KPROXY_KERNEL_TESTS=require"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Passed || !strings.Contains(res.Output, "--- PASS: TestSCTPClusterIP") {
		t.Fatalf("SCTP e2e test in the guest did not pass:\n%s", tail(res.Output, 80))
	}
	t.Logf("SCTP e2e in the guest passed in %v", res.Duration.Round(time.Millisecond))
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
