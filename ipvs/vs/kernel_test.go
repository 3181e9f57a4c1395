package vs_test

import (
	"errors"
	"math"
	"syscall"
	"testing"
	"time"

	"github.com/kproxy/kproxy/ipvs/vs"
	"github.com/kproxy/kproxy/test/kerneltest"
)

// newKernelHandle opens IPVS in a fresh network namespace of the qemu guest
// (this host's kernel has no IPVS; test/vm TestIPVSKernel runs it there).
func newKernelHandle(t *testing.T) *vs.KernelHandle {
	t.Helper()
	kerneltest.GuestOnly(t, "test/vm TestIPVSKernel (IPVS kernel test; this host's kernel has no IPVS)")
	ns := kerneltest.Netns(t, "kpx-vs-")
	h, err := vs.NewKernelHandle(kerneltest.NetnsPath(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// TestKernelHasIPVS: the guest's kernel (ip_vs loaded by its init) has the
// IPVS generic netlink family; the host's, without IPVS, is the unit
// test's ENOENT case (and cmd/kproxy's TestModeSwitchKernel).
func TestKernelHasIPVS(t *testing.T) {
	kerneltest.GuestOnly(t, "test/vm TestIPVSKernel (IPVS kernel test; this host's kernel has no IPVS)")
	has, err := vs.KernelHasIPVS()
	if err != nil || !has {
		t.Fatalf("KernelHasIPVS() = %v, %v; want true in the guest", has, err)
	}
}

// TestKernelRejectsWhatTheFakeRejects checks the Fake's errnos against the kernel.
func TestKernelRejectsWhatTheFakeRejects(t *testing.T) {
	h := newKernelHandle(t)
	k := vsKey(vs.TCP, "10.96.0.1", 80)
	missing := vsKey(vs.TCP, "10.96.0.9", 80)
	if err := errors.Join(h.NewVirtualServer(vs.VirtualServer{ServiceKey: k, Scheduler: "rr"}),
		h.NewDestination(k, dest("10.244.1.1", 8080, 1))); err != nil {
		t.Fatal(err)
	}
	_, getErr := h.GetVirtualServer(missing)
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"duplicate virtual server", h.NewVirtualServer(vs.VirtualServer{ServiceKey: k, Scheduler: "rr"}), syscall.EEXIST},
		{"unknown scheduler", h.NewVirtualServer(vs.VirtualServer{ServiceKey: missing, Scheduler: "nope"}), syscall.ENOENT},
		{"delete missing virtual server", h.DelVirtualServer(missing), syscall.ESRCH},
		{"update missing virtual server", h.UpdateVirtualServer(vs.VirtualServer{ServiceKey: missing, Scheduler: "rr"}), syscall.ESRCH},
		{"destination on a missing virtual server", h.NewDestination(missing, dest("10.244.1.1", 8080, 1)), syscall.ESRCH},
		{"duplicate destination", h.NewDestination(k, dest("10.244.1.1", 8080, 1)), syscall.EEXIST},
		{"update missing destination", h.UpdateDestination(k, dest("10.244.1.2", 8080, 1)), syscall.ENOENT},
		{"delete missing destination", h.DelDestination(k, dest("10.244.1.2", 8080, 1).DestKey), syscall.ENOENT},
		{"get missing virtual server", getErr, syscall.ESRCH},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: error = %v, want %v", tt.name, tt.err, tt.want)
		}
	}
	if ds, err := h.ListDestinations(missing); err != nil || len(ds) != 0 {
		t.Errorf("destinations of a missing virtual server = %v, %v; want none, no error (as the Fake)", ds, err)
	}
}

// TestKernelTimeoutsMatchTheFake applies the same timeouts to a namespace
// and to the Fake (Debian's HZ=250) and requires the same errors and values.
func TestKernelTimeoutsMatchTheFake(t *testing.T) {
	h := newKernelHandle(t)
	f := vs.NewFake(vs.FakeOptions{})
	if got, err := h.GetTimeouts(); err != nil || got != vs.DefaultKernelTimeouts() {
		t.Fatalf("new namespace's timeouts = %s, %v; want %s", got, err, vs.DefaultKernelTimeouts())
	}
	limit := time.Duration(math.MaxInt32/250) * time.Second
	for _, set := range []vs.Timeouts{
		{TCP: time.Hour, TCPFin: time.Minute, UDP: 10 * time.Second},
		{},
		{UDP: 1500 * time.Millisecond},
		{TCP: 500 * time.Millisecond},
		{TCPFin: limit},
		{TCPFin: limit + time.Second},
		{UDP: math.MaxUint32 * time.Second},
		{TCP: 5 * time.Second, UDP: -time.Second},
	} {
		kerr, ferr := h.SetTimeouts(set), f.SetTimeouts(set)
		if errors.Is(kerr, syscall.EINVAL) != errors.Is(ferr, syscall.EINVAL) || (kerr == nil) != (ferr == nil) {
			t.Errorf("SetTimeouts(%s): kernel %v, fake %v", set, kerr, ferr)
		}
		kt, err := h.GetTimeouts()
		if err != nil {
			t.Fatal(err)
		}
		if ft, _ := f.GetTimeouts(); kt != ft {
			t.Errorf("after SetTimeouts(%s): kernel %s, fake %s", set, kt, ft)
		}
	}
}
