package nftables

import (
	"context"
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"sigs.k8s.io/knftables"

	. "github.com/kproxy/kproxy/proxier/proxiertest"
)

// discardNFT builds transactions like the real Interface and drops them:
// what a benchmark over it measures is kproxy's own work (render, diff,
// transaction text), not nft's.
type discardNFT struct{ *knftables.Fake }

func (discardNFT) Run(context.Context, *knftables.Transaction) error { return nil }

// benchWorld is services ClusterIP Services (one TCP port) with endpoints
// endpoints each, every fourth one a NodePort.
func benchWorld(b testing.TB, services, endpoints int) (*World, []*v1.Service) {
	b.Helper()
	w := NewWorld(b, WorldOptions{NodeName: testNodeName, NodeIPs: []string{testNodeIP}})
	svcs := make([]*v1.Service, services)
	for i := range svcs {
		opts := []ServiceOption{ClusterIP(fmt.Sprintf("172.30.%d.%d", i/250, i%250+1))}
		if i%4 == 0 {
			opts = append(opts, Port("p80", v1.ProtocolTCP, 80), NodePort(int32(30000+i%2700)))
		}
		svcs[i] = Service(fmt.Sprintf("ns%d", i%100), fmt.Sprintf("svc%d", i), opts...)
		w.Apply(svcs[i], benchSlice(svcs[i], i, endpoints, 0))
	}
	return w, svcs
}

func benchSlice(svc *v1.Service, i, n, gen int) *discovery.EndpointSlice {
	eps := make([]discovery.Endpoint, n)
	for j := range eps {
		node := "other-node"
		if j == 0 {
			node = testNodeName
		}
		last := j + 1
		if j == n-1 && gen > 0 {
			last = 100 + gen%100 // a different last endpoint per generation
		}
		eps[j] = Endpoint(fmt.Sprintf("10.%d.%d.%d", 100+(i/250)%100, i%250, last), OnNode(node))
	}
	return SliceFor(svc, eps...)
}

func benchProxier(b testing.TB, nft knftables.Interface) *Proxier {
	p, err := New(Options{NFT: nft, MasqueradeMark: "0x00004000", LocalDetector: localDetector4()})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkFullSync10k: a full sync of 10000 services × 10 endpoints
// (render, plan, transaction text), nft's part left out.
func BenchmarkFullSync10k(b *testing.B) {
	w, _ := benchWorld(b, 10000, 10)
	snap := w.Snapshot()
	p := benchProxier(b, discardNFT{knftables.NewFake(knftables.IPv4Family, TableName)})
	b.ResetTimer()
	for b.Loop() {
		if _, err := p.Sync(context.Background(), snap); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPartialOneEndpoint10k: one endpoint of one service changes in a
// 10000 × 10 table; the world's update is not timed. fake applies every
// transaction to knftables' Fake as well.
func BenchmarkPartialOneEndpoint10k(b *testing.B) {
	for _, fake := range []bool{false, true} {
		b.Run(fmt.Sprintf("fake=%v", fake), func(b *testing.B) {
			w, svcs := benchWorld(b, 10000, 10)
			var nft knftables.Interface = discardNFT{knftables.NewFake(knftables.IPv4Family, TableName)}
			if fake {
				nft = knftables.NewFake(knftables.IPv4Family, TableName)
			}
			p := benchProxier(b, nft)
			if _, err := p.Sync(context.Background(), w.Snapshot()); err != nil {
				b.Fatal(err)
			}
			gen := 0
			for b.Loop() {
				b.StopTimer()
				gen++
				i := (gen * 7919) % len(svcs)
				w.Apply(benchSlice(svcs[i], i, 10, gen))
				snap := w.Snapshot()
				b.StartTimer()
				res, err := p.Sync(context.Background(), snap)
				if err != nil || res.Full {
					b.Fatalf("partial sync: %+v %v", res, err)
				}
			}
		})
	}
}
