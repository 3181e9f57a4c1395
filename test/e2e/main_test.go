package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kproxy/kproxy/test/kerneltest"
	"github.com/kproxy/kproxy/test/netns"
)

var (
	kproxyBin    string
	podserverBin string
)

// TestMain builds kproxy and the pod server once (unless KPROXY_BIN / KPROXY_PODSERVER_BIN name prebuilt ones).
// With KPROXY_KERNEL_TESTS=require, a machine that cannot run kernel tests fails the run instead of skipping.
func TestMain(m *testing.M) {
	if reason := netns.SkipReason(); reason != "" {
		if kerneltest.Required() {
			fmt.Fprintln(os.Stderr, "FAIL:", reason)
			os.Exit(1)
		}
		os.Exit(m.Run()) // each test skips with the reason
	}
	dir, err := os.MkdirTemp("", "kpx-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if err := buildBinaries(dir); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL: build test binaries:", err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

func buildBinaries(dir string) error {
	ctx := context.Background()
	// Inside the qemu guest there is no Go toolchain: the host passes prebuilt binaries.
	if podserverBin = os.Getenv("KPROXY_PODSERVER_BIN"); podserverBin == "" {
		var err error
		if podserverBin, err = netns.BuildPodserver(ctx, dir); err != nil {
			return err
		}
	}
	if kproxyBin = os.Getenv("KPROXY_BIN"); kproxyBin != "" {
		return nil
	}
	kproxyBin = filepath.Join(dir, "kproxy")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", kproxyBin, "github.com/kproxy/kproxy/cmd/kproxy")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build kproxy: %w: %s", err, out)
	}
	return nil
}
