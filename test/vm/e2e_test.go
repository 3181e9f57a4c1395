package vm_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kproxy/kproxy/test/vm"
)

// runE2EInGuest runs the e2e tests matching the names in the guest, with
// kproxy and the pod servers built here and handed in (the guest has no Go
// toolchain), and fails unless each named test passed (a skip is a failure).
// It returns the guest's console output.
func runE2EInGuest(t *testing.T, names []string, memory string, env ...string) string {
	t.Helper()
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
	res, err := vm.RunGoTest(ctx, "./test/e2e", "^("+strings.Join(names, "|")+")$", vm.Options{
		Assets: assets, Timeout: 5 * time.Minute, Memory: memory,
		Extra: []vm.File{
			{Path: "/kpx/tools/kproxy", Source: kproxy, Mode: 0o755},
			{Path: "/kpx/tools/podserver", Source: podserver, Mode: 0o755},
		},
		Env: append([]string{"KPROXY_BIN=/kpx/tools/kproxy", "KPROXY_PODSERVER_BIN=/kpx/tools/podserver",
			"KPROXY_KERNEL_TESTS=require"}, env...),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if !strings.Contains(res.Output, "--- PASS: "+name) {
			t.Errorf("%s did not pass in the guest", name)
		}
	}
	if !res.Passed || t.Failed() {
		t.Fatalf("e2e tests in the guest:\n%s", tail(res.Output, 400))
	}
	t.Logf("e2e tests in the guest passed in %v", res.Duration.Round(time.Millisecond))
	return res.Output
}

// TestSCTPTrafficInGuest runs the iptables-mode SCTP e2e test inside the
// guest, whose kernel has SCTP sockets (this machine's has none).
func TestSCTPTrafficInGuest(t *testing.T) {
	runE2EInGuest(t, []string{"TestSCTPClusterIP"}, "", "KPROXY_E2E_PROXY_MODE=iptables") // the guest has no nft
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
