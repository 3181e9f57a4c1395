package ipvs_test

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/ipvs"
	"github.com/kproxy/kproxy/ipvs/ipset"
	"github.com/kproxy/kproxy/ipvs/rules"
	"github.com/kproxy/kproxy/ipvs/vs"
	"github.com/kproxy/kproxy/proxier/netfilter"
	pt "github.com/kproxy/kproxy/proxier/proxiertest"
)

const ipvsNAT = `*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-MARK-MASQ - [0:0]
:FOREIGN - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A POSTROUTING -s 10.98.0.0/16 -j MASQUERADE
-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT
-A KUBE-NODE-PORT -p tcp -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ
COMMIT
`

const ipvsFilter = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-IPVS-FILTER - [0:0]
:MY-CHAIN - [0:0]
-A INPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER
-A INPUT -j MY-CHAIN
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A MY-CHAIN -j KUBE-FORWARD
COMMIT
`

func TestCleanupRulesRemovesIPVSChainsAndJumpsOnly(t *testing.T) {
	tests := []struct {
		name        string
		nat, filter string
		wantChains  int
		want        []string
		notWant     []string
	}{
		{
			name: "ipvs mode tables", nat: ipvsNAT, filter: ipvsFilter, wantChains: 5,
			want: []string{
				":KUBE-SERVICES - [0:0]", "-X KUBE-SERVICES", "-X KUBE-NODE-PORT", "-X KUBE-MARK-MASQ", "-X KUBE-POSTROUTING",
				`-D PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
				`-D OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
				`-D INPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER`,
				"-X KUBE-IPVS-FILTER",
			},
			// MY-CHAIN (not ours) still jumps to KUBE-FORWARD: it is spared, with its jump from FORWARD.
			notWant: []string{"MASQUERADE", "MY-CHAIN", "KUBE-FORWARD"},
		},
		{name: "nothing of ipvs mode", nat: "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n", filter: "*filter\nCOMMIT\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &countingRestorer{saved: map[string]string{"nat": tt.nat, "filter": tt.filter}}
			n, err := netfilter.CleanupIPVSMode(context.Background(), rec)
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.wantChains {
				t.Errorf("deleted %d chains, want %d", n, tt.wantChains)
			}
			if tt.wantChains == 0 {
				if len(rec.inputs) != 0 {
					t.Errorf("restored %q with nothing to clean", rec.inputs)
				}
				return
			}
			if len(rec.inputs) != 1 {
				t.Fatalf("%d restores, want 1", len(rec.inputs))
			}
			in := rec.inputs[0]
			for _, w := range tt.want {
				if !strings.Contains(in, w+"\n") {
					t.Errorf("restore input lacks %q:\n%s", w, in)
				}
			}
			for _, nw := range tt.notWant {
				if strings.Contains(in, nw) {
					t.Errorf("restore input touches %q:\n%s", nw, in)
				}
			}
		})
	}
}

func TestCleanupRemovesOwnedVirtualServersDeviceAndSets(t *testing.T) {
	ctx := context.Background()
	sets := ipset.NewFake()
	w := newWorld(t, func(o *ipvs.Options) {
		o.Netfilter = &ipvs.NetfilterOptions{IPSet: sets, Restorer: &countingRestorer{}, Rules: rules.Options{MasqueradeMark: mark}}
	})
	w.sync(w.next(e(svc("a", "172.30.0.1", pt.NodePort(30080)), ep("10.244.0.2"))))
	foreign := []vs.VirtualServer{
		{ServiceKey: vs.ServiceKey{Addr: addr(nodeIP), Port: 80, Protocol: vs.TCP}, Scheduler: "rr"},          // node IP, not a NodePort
		{ServiceKey: vs.ServiceKey{Addr: addr("198.51.100.7"), Port: 443, Protocol: vs.TCP}, Scheduler: "rr"}, // keepalived VIP
		{ServiceKey: vs.ServiceKey{Addr: addr("127.0.0.1"), Port: 30099, Protocol: vs.UDP}, Scheduler: "rr"},  // excluded
	}
	for _, v := range foreign {
		if err := w.h.NewVirtualServer(v); err != nil {
			t.Fatal(err)
		}
	}
	rec := &countingRestorer{saved: map[string]string{"nat": ipvsNAT, "filter": ipvsFilter}}
	res, err := ipvs.Cleanup(ctx, ipvs.CleanupOptions{
		Handle: w.h, Device: w.a, IPSet: sets,
		Families:     []ipvs.CleanupFamily{{Family: v1.IPv4Protocol, Addresses: w.a, Restorer: rec}},
		ExcludeCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Left: the foreign ones and the excluded NodePort-range one; gone: the ClusterIP and the NodePort.
	var left []string
	servers, _ := w.h.ListVirtualServers()
	for _, v := range servers {
		left = append(left, v.ServiceKey.String())
	}
	want := []string{"TCP/192.168.1.10:80", "UDP/127.0.0.1:30099", "TCP/198.51.100.7:443"}
	slices.Sort(left)
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Errorf("virtual servers after cleanup = %v, want %v", left, want)
	}
	if !res.DeviceRemoved || len(w.bound()) != 0 {
		t.Errorf("kube-ipvs0 not removed: result %+v, bound %v", res, w.bound())
	}
	if err := w.a.Bind(addr("172.30.0.1")); err == nil {
		t.Error("binding after cleanup succeeded: the device still exists")
	}
	have, _ := sets.List(ctx)
	for name := range have {
		if strings.HasPrefix(name, "KUBE-") {
			t.Errorf("ipset %s survived cleanup", name)
		}
	}
	if res.Sets == 0 || res.Chains == 0 || len(rec.inputs) != 1 {
		t.Errorf("result %+v, %d restores", res, len(rec.inputs))
	}
}

func TestCleanupAllFlushesEveryVirtualServer(t *testing.T) {
	w := newWorld(t)
	w.sync(w.next(e(svc("a", "172.30.0.1"), ep("10.244.0.2"))))
	if err := w.h.NewVirtualServer(vs.VirtualServer{ServiceKey: vs.ServiceKey{Addr: addr("198.51.100.7"), Port: 443, Protocol: vs.TCP}, Scheduler: "rr"}); err != nil {
		t.Fatal(err)
	}
	res, err := ipvs.Cleanup(context.Background(), ipvs.CleanupOptions{Handle: w.h, All: true})
	if err != nil {
		t.Fatal(err)
	}
	if vss, _ := w.h.ListVirtualServers(); len(vss) != 0 || res.VirtualServers != 2 {
		t.Errorf("after All cleanup: %v left, %d deleted", vss, res.VirtualServers)
	}
}

func TestCleanupWithoutSeamsIsANoOp(t *testing.T) {
	res, err := ipvs.Cleanup(context.Background(), ipvs.CleanupOptions{Families: []ipvs.CleanupFamily{{Family: v1.IPv4Protocol}}})
	if err != nil || res != (ipvs.CleanupResult{}) {
		t.Errorf("Cleanup with no kernel seams = %+v, %v", res, err)
	}
}
