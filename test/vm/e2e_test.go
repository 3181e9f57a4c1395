package vm_test

import (
	"context"
	"regexp"
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

// sctpModes are the modes TestSCTPClusterIP runs in when no
// KPROXY_E2E_PROXY_MODE is set (test/e2e's forEachMode); IPVS mode's SCTP
// runs in TestIPVSModeTrafficInGuest.
var sctpModes = []string{"iptables", "nftables"}

// TestSCTPTrafficInGuest runs the SCTP e2e test inside the guest, whose
// kernel has SCTP sockets (this machine's has none), in iptables and
// nftables modes at once: without KPROXY_E2E_PROXY_MODE the test runs a
// parallel subtest per mode, and each must pass.
func TestSCTPTrafficInGuest(t *testing.T) {
	out := runE2EInGuest(t, []string{"TestSCTPClusterIP"}, "")
	for _, mode := range sctpModes {
		m := regexp.MustCompile(`(?m)--- PASS: (TestSCTPClusterIP/` + mode + ` \(\S+\))$`).FindStringSubmatch(out)
		if m == nil {
			t.Errorf("TestSCTPClusterIP/%s did not pass in the guest", mode)
			continue
		}
		t.Logf("guest: %s", m[1])
	}
	for _, m := range regexp.MustCompile(`(?m)^\s*udp_test\.go:\d+: (SCTP .*)$`).FindAllStringSubmatch(out, -1) {
		t.Logf("guest: %s", m[1])
	}
	if t.Failed() {
		t.Logf("guest output:\n%s", tail(out, 200))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
