package ipset_test

import (
	"context"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/ipvs/ipset"
	"github.com/kproxy/kproxy/test/kerneltest"
)

// TestKernelIPSetAgreesWithTheFake restores the same batch with the real
// ipset in a fresh network namespace (in the qemu guest, see
// test/vm/ipvs_test.go) and into the Fake: both list the same canonical
// entries, and both reject an entry of the wrong type.
func TestKernelIPSetAgreesWithTheFake(t *testing.T) {
	kerneltest.GuestOnly(t, "test/vm TestIPVSKernel (ipset kernel test)")
	ns := kerneltest.Netns(t, "kpx-sets-")
	ctx := context.Background()
	kernel := ipset.NewExec(ipset.ExecOptions{Command: []string{"ip", "netns", "exec", ns, "ipset"}})
	fake := ipset.NewFake()
	b := kernelDifferentialBatch()
	for _, s := range []ipset.Interface{kernel, fake} {
		if err := s.Restore(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	got, err := kernel.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := fake.List(ctx)
	for name, w := range want {
		if g := got[name]; g == nil || g.Spec.Type != w.Spec.Type || !slices.Equal(g.Members, w.Members) {
			t.Errorf("%s: kernel %+v, fake %+v", name, g, w)
		}
	}
	bad := &ipset.Batch{}
	bad.Add("KPX-T-PORTS", "10.0.0.1,tcp:80")
	if err := kernel.Restore(ctx, bad); err == nil {
		t.Error("the kernel accepted an ip,port entry in a bitmap:port set")
	}
	if err := fake.Restore(ctx, bad); err == nil {
		t.Error("the fake accepted an ip,port entry in a bitmap:port set")
	}
}

func kernelDifferentialBatch() *ipset.Batch {
	b := &ipset.Batch{}
	b.Create(ipset.Spec{Name: "KPX-T-IPPORT", Type: ipset.HashIPPort, Family: v1.IPv4Protocol})
	b.Create(ipset.Spec{Name: "KPX-T-NET", Type: ipset.HashIPPortNet, Family: v1.IPv4Protocol})
	b.Create(ipset.Spec{Name: "KPX-T-6", Type: ipset.HashIPPortIP, Family: v1.IPv6Protocol})
	b.Create(ipset.Spec{Name: "KPX-T-PORTS", Type: ipset.BitmapPort, Family: v1.IPv4Protocol})
	b.Create(ipset.Spec{Name: "KPX-T-IP", Type: ipset.HashIP, Family: v1.IPv6Protocol})
	b.Add("KPX-T-IPPORT", "10.0.0.1,TCP:80")
	b.Add("KPX-T-IPPORT", "10.0.0.2,80")
	b.Add("KPX-T-IPPORT", "10.0.0.3,sctp:9")
	b.Add("KPX-T-NET", "10.0.0.1,tcp:80,10.1.2.3/8")
	b.Add("KPX-T-NET", "10.0.0.1,udp:53,10.0.0.5/32")
	b.Add("KPX-T-6", "FD00:0::1,udp:53,fd00::0:2")
	b.Add("KPX-T-PORTS", "30080")
	b.Add("KPX-T-IP", "fd00:0:0:0::9")
	b.Del("KPX-T-IPPORT", "10.0.0.9,tcp:80")
	return b
}
