package addresses_test

import (
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/ipvs/addresses"
	"github.com/kproxy/kproxy/test/kerneltest"
)

// TestKernelAddressesMatchTheFake plays the script on kube-ipvs0 in a
// fresh network namespace of the qemu guest (test/vm TestIPVSKernel; the
// dummy module is the guest's) and on the Fake: every step must end the
// same way.
func TestKernelAddressesMatchTheFake(t *testing.T) {
	kerneltest.GuestOnly(t, "test/vm TestIPVSKernel (kube-ipvs0 kernel test)")
	ns := kerneltest.Netns(t, "kpx-addr-")
	for _, args := range [][]string{
		{"link", "add", "node0", "type", "dummy"},
		{"addr", "add", "192.168.1.10/24", "dev", "node0"},
		{"link", "set", "node0", "up"},
	} {
		if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	n, err := addresses.NewNetlink(kerneltest.NetnsPath(t, ns), v1.IPv4Protocol)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	f := addresses.NewFake(netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.168.1.10"))
	if got, want := run(n), run(f); !slices.Equal(got, want) {
		t.Errorf("kernel and fake differ:\nkernel %q\n  fake %q", got, want)
	}
}
