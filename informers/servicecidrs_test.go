package informers

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func serviceCIDR(name string, cidrs ...string) *networkingv1.ServiceCIDR {
	return &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: networkingv1.ServiceCIDRSpec{CIDRs: cidrs}}
}

func TestRunServiceCIDRsReportsEveryChange(t *testing.T) {
	client := fake.NewClientset(serviceCIDR("kubernetes", "10.96.0.0/12", "fd00:10:96::/108"))
	got := make(chan []netip.Prefix, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunServiceCIDRs(ctx, ServiceCIDRsOptions{Client: client, OnChange: func(p []netip.Prefix) { got <- p }})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	expect := func(want ...string) {
		t.Helper()
		var w []netip.Prefix
		for _, s := range want {
			w = append(w, netip.MustParsePrefix(s))
		}
		select {
		case p := <-got:
			if !slices.Equal(p, w) {
				t.Fatalf("OnChange(%v), want %v", p, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no OnChange, want %v", w)
		}
	}
	expect("10.96.0.0/12", "fd00:10:96::/108")
	sc := client.NetworkingV1().ServiceCIDRs()
	if _, err := sc.Create(ctx, serviceCIDR("extra", "10.100.0.0/16", "10.96.0.0/12", "bad"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("10.96.0.0/12", "10.100.0.0/16", "fd00:10:96::/108")
	if err := sc.Delete(ctx, "kubernetes", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("10.96.0.0/12", "10.100.0.0/16")
}
