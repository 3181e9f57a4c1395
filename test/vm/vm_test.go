package vm_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kproxy/kproxy/test/kerneltest"
	"github.com/kproxy/kproxy/test/vm"
)

// assetsForTest prepares the guest's kernel and initramfs, or skips.
func assetsForTest(t *testing.T) *vm.Assets {
	t.Helper()
	kerneltest.HostOnly(t)
	kerneltest.NeedRoot(t, "qemu kernel test (prepares the guest's assets: apt-get, /var/cache/kproxy)")
	testAssets.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		start := time.Now()
		testAssets.a, testAssets.err = vm.PrepareAssets(ctx)
		testAssets.took = time.Since(start)
	})
	if testAssets.err != nil {
		kerneltest.SkipOrFail(t, "qemu kernel test: cannot prepare the guest's assets: "+testAssets.err.Error())
	}
	t.Logf("guest assets ready in %v: kernel %s, accelerator %s", testAssets.took.Round(time.Millisecond),
		testAssets.a.KernelVersion, testAssets.a.Accel)
	a := testAssets.a
	return &a
}

// testAssets are prepared once per test binary: preparing them (the cached
// script, then the accelerator probe, which boots the kernel) is the same for
// every test.
var testAssets struct {
	once sync.Once
	a    vm.Assets
	err  error
	took time.Duration
}

func runForTest(t *testing.T, opts vm.Options) vm.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := vm.Run(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("guest run took %v (boot included)", res.Duration.Round(time.Millisecond))
	return res
}

// TestGuestKernelFeatures boots the guest with guestcheck and requires every
// kernel feature kproxy's IPVS, nftables and SCTP tests need.
func TestGuestKernelFeatures(t *testing.T) {
	assets := assetsForTest(t)
	bin, err := vm.BuildStatic(context.Background(), "./test/vm/guestcheck", t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	res := runForTest(t, vm.Options{Binary: bin, Assets: assets, Timeout: 3 * time.Minute})
	t.Logf("guest kernel %s; boot + checks %v", guestKernel(res.Output), res.Duration.Round(time.Millisecond))
	results := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^check (\S+): (.*)$`).FindAllStringSubmatch(res.Output, -1) {
		results[m[1]] = m[2]
	}
	for _, name := range []string{"ipvs", "ipvs-real-server", "ipvs-schedulers", "ipset", "iptables-nft",
		"iptables-legacy", "nftables", "conntrack", "sctp-socket", "veth-bridge"} {
		if got, ok := results[name]; !ok || got != "ok" {
			t.Errorf("check %s = %q, want ok", name, got)
		}
	}
	if res.ExitCode != 0 || t.Failed() {
		t.Errorf("guestcheck exit code %d; console:\n%s", res.ExitCode, res.Output)
	}
}

func guestKernel(out string) string {
	if m := regexp.MustCompile(`(?m)kernel (\S+)$`).FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return "(unknown)"
}

// TestRunPassesArgsEnvFilesAndExitCode runs a shell script as the binary.
func TestRunPassesArgsEnvFilesAndExitCode(t *testing.T) {
	assets := assetsForTest(t)
	script := filepath.Join(t.TempDir(), "probe.sh")
	body := "#!/bin/sh\necho \"args:$#:$1:$2\"\necho \"env:$KPX_X:$KPROXY_IN_VM\"\ncat /kpx/data/x\necho \"cwd:$(pwd)\"\nexit 7\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	res := runForTest(t, vm.Options{
		Binary: script, Args: []string{"a b", "it's"}, Env: []string{"KPX_X=y z"}, Assets: assets,
		Extra: []vm.File{{Path: "/kpx/data/x", Data: []byte("extra-file\n")}}, Timeout: 2 * time.Minute,
	})
	if res.ExitCode != 7 {
		t.Errorf("exit code = %d, want 7", res.ExitCode)
	}
	for _, want := range []string{"args:2:a b:it's\n", "env:y z:1\n", "extra-file\n", "cwd:/kpx\n"} {
		if !strings.Contains(res.Output, want) {
			t.Errorf("console lacks %q:\n%s", want, res.Output)
		}
	}
}

// TestRunTimeoutKillsQEMU: a guest that never finishes is killed when the
// timeout expires or the context ends, and Run reports an error instead of an
// exit code.
func TestRunTimeoutKillsQEMU(t *testing.T) {
	assets := assetsForTest(t)
	script := filepath.Join(t.TempDir(), "hang.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nsleep 3600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	const limit = 3 * time.Second
	tests := []struct {
		name    string
		timeout time.Duration // Options.Timeout
		ctx     time.Duration // context deadline; 0 for none
		wantErr string
	}{
		{"Options.Timeout", limit, 0, "timed out"},
		{"context deadline", time.Hour, limit, context.DeadlineExceeded.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.ctx > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctx)
				defer cancel()
			}
			start := time.Now()
			_, err := vm.Run(ctx, vm.Options{Binary: script, Assets: assets, Timeout: tt.timeout})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Run error = %v, want one containing %q", err, tt.wantErr)
			}
			if d := time.Since(start); d > limit+5*time.Second {
				t.Errorf("Run returned after %v, want about %v", d, limit)
			}
		})
	}
}

// TestRunGoTestReportsPassAndFail runs this package's guest-only tests in
// the guest: one passes, one fails on purpose.
func TestRunGoTestReportsPassAndFail(t *testing.T) {
	assets := assetsForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := vm.RunGoTest(ctx, "./test/vm", "^TestInsideGuest", vm.Options{
		Assets: assets, Env: []string{"KPX_VM_SELFTEST=1"}, Timeout: 3 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("go test binary in the guest took %v", res.Duration.Round(time.Millisecond))
	if res.Passed {
		t.Errorf("Passed = true, want false (TestInsideGuestFailsOnPurpose fails)")
	}
	for _, want := range []string{"--- PASS: TestInsideGuestHasIPVS", "--- FAIL: TestInsideGuestFailsOnPurpose"} {
		if !strings.Contains(res.Output, want) {
			t.Errorf("output lacks %q:\n%s", want, res.Output)
		}
	}
}

func selftestOnly(t *testing.T) {
	if !kerneltest.InGuest() || os.Getenv("KPX_VM_SELFTEST") == "" {
		kerneltest.RunsElsewhere(t, "inside the qemu guest, started by TestRunGoTestReportsPassAndFail")
	}
}

func TestInsideGuestHasIPVS(t *testing.T) {
	selftestOnly(t)
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		t.Fatalf("IPVS is not loaded in the guest: %v", err)
	}
}

func TestInsideGuestFailsOnPurpose(t *testing.T) {
	selftestOnly(t)
	t.Error("failing on purpose so the host sees a failed run")
}
