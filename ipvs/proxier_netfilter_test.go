package ipvs_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kproxy/kproxy/ipvs"
	"github.com/kproxy/kproxy/ipvs/addresses"
	"github.com/kproxy/kproxy/ipvs/ipset"
	"github.com/kproxy/kproxy/ipvs/rules"
	"github.com/kproxy/kproxy/ipvs/vs"
	pt "github.com/kproxy/kproxy/proxier/proxiertest"
)

func TestProxierSyncsSetsAndRules(t *testing.T) {
	sets := ipset.NewFake()
	rec := &countingRestorer{saved: map[string]string{}}
	w := newWorld(t, func(o *ipvs.Options) {
		o.Netfilter = &ipvs.NetfilterOptions{IPSet: sets, Restorer: rec, Rules: rules.Options{MasqueradeMark: mark}}
	})
	w.sync(w.next(e(svc("a", "172.30.0.1", pt.NodePort(30080), pt.ExternalIPs("203.0.113.1")))))
	assertMembers(t, sets, "KUBE-CLUSTER-IP", "172.30.0.1,tcp:80")
	assertMembers(t, sets, "KUBE-EXTERNAL-IP", "203.0.113.1,tcp:80")
	assertMembers(t, sets, "KUBE-NODE-PORT-TCP", "30080")
	assertMembers(t, sets, "KUBE-IPVS-IPS", "172.30.0.1", "203.0.113.1")
	if len(rec.inputs) != 1 || !strings.Contains(rec.inputs[0], "--match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ") {
		t.Fatalf("restores: %q", rec.inputs)
	}

	// A failing ipset step fails the sync; the Runner's next sync, full, repairs.
	sets.FailRestore = errors.New("ipset: boom")
	if _, err := w.p.Sync(context.Background(), w.next(e(svc("b", "172.30.0.2")))); err == nil {
		t.Fatal("Sync succeeded although ipset restore failed")
	}
	w.sync(w.full(e(svc("b", "172.30.0.2"))))
	assertMembers(t, sets, "KUBE-CLUSTER-IP", "172.30.0.2,tcp:80")
	assertMembers(t, sets, "KUBE-NODE-PORT-TCP")
	wantStrings(t, "kernel", w.state(), []string{"TCP/172.30.0.2:80 rr"})
}

func TestNewRejectsIncompleteNetfilterOptions(t *testing.T) {
	h, a := vs.NewFake(vs.FakeOptions{}), addresses.NewFake()
	for _, nf := range []*ipvs.NetfilterOptions{
		{Restorer: &countingRestorer{}, Rules: rules.Options{MasqueradeMark: mark}},
		{IPSet: ipset.NewFake(), Rules: rules.Options{MasqueradeMark: mark}},
		{IPSet: ipset.NewFake(), Restorer: &countingRestorer{}},
	} {
		if _, err := ipvs.New(ipvs.Options{Handle: h, Addresses: a, Netfilter: nf}); err == nil {
			t.Errorf("New accepted %+v", nf)
		}
	}
}
