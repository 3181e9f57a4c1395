package netns

import (
	"os"
	"os/exec"
	"testing"

	"github.com/kproxy/kproxy/test/kerneltest"
)

// SkipReason says why kernel tests cannot build worlds here, or "" when they
// can: they need root (namespaces, links, iptables) and iproute2.
func SkipReason() string {
	if os.Geteuid() != 0 {
		return "kernel test: needs root to create network namespaces (run the README's test command as root)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "kernel test: iproute2 'ip' not found in PATH"
	}
	return ""
}

// NewForTest builds a world for a test: it skips the test when SkipReason is
// non-empty (fails it under KPROXY_KERNEL_TESTS=require), fails it when setup fails, and closes the world on cleanup
// (failing the test if teardown leaves something behind).
func NewForTest(t testing.TB, opts Options) *World {
	t.Helper()
	if reason := SkipReason(); reason != "" {
		kerneltest.SkipOrFail(t, reason)
	}
	w, err := NewWorld(opts)
	if err != nil {
		t.Fatalf("netns world: %v", err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("close netns world %s: %v", w.Prefix, err)
		}
	})
	return w
}
