package testns_test

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kproxy/kproxy/test/kerneltest"
	"github.com/kproxy/kproxy/test/testns"
)

func name(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "kpx-reap-" + hex.EncodeToString(b)
}

// TestReapOrphansDeletesOnlyDeadOwners makes two namespaces, rewrites one's
// owner record to a process that is gone, and checks that ReapOrphans
// deletes that one and leaves the other, whose owner (this test) lives.
func TestReapOrphansDeletesOnlyDeadOwners(t *testing.T) {
	kerneltest.NeedRoot(t, "kernel test (creates network namespaces)")
	kerneltest.NeedTools(t, "kernel test", "ip")
	orphan, kept := name(t), name(t)
	for _, n := range []string{orphan, kept} {
		if err := testns.Add(n); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := testns.Delete(n); err != nil {
				t.Errorf("delete %s: %v", n, err)
			}
		})
	}
	// pid 0x7ffffffe is above any pid_max Linux allows by default.
	if err := os.WriteFile(filepath.Join("/run/kproxy-test/netns", orphan), []byte("2147483646 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reaped, err := testns.ReapOrphans()
	if err != nil {
		t.Fatalf("ReapOrphans: %v", err)
	}
	var names []string
	for _, o := range reaped {
		names = append(names, o.Name)
	}
	if !slices.Contains(names, orphan) || slices.Contains(names, kept) {
		t.Errorf("reaped %v; want %s and not %s", names, orphan, kept)
	}
	if _, err := os.Stat(testns.Path(orphan)); !os.IsNotExist(err) {
		t.Errorf("orphan %s still mounted: %v", orphan, err)
	}
	if _, err := os.Stat(testns.Path(kept)); err != nil {
		t.Errorf("namespace of a live owner was removed: %v", err)
	}
}
