package iptables

import (
	"fmt"
	"net/netip"
	"testing"
)

// scaleWorld builds n NodePort services with k endpoints each.
func scaleWorld(n, k int) *world {
	w := newWorld()
	for i := range n {
		ip := netip.AddrFrom4([4]byte{172, 30, byte(i >> 8), byte(i)})
		sp := svc(fmt.Sprintf("ns%d", i%100), fmt.Sprintf("svc%d", i), withNodePort(int32(30000+i%2000)))
		sp.ClusterIP = ip
		var all []endpointArg
		for j := range k {
			all = append(all, endpointArg{netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), byte(j + 1)}), 8080})
		}
		w.add(sp, epsFrom(all))
	}
	return w
}

type endpointArg struct {
	ip   netip.Addr
	port int32
}

func epsFrom(args []endpointArg) *endpointSetAlias {
	var list []endpointAlias
	for _, a := range args {
		list = append(list, endpointAlias{IP: a.ip, Port: a.port, Ready: true, Serving: true})
	}
	return eps(list...)
}

func BenchmarkRenderFull10kServices10Endpoints(b *testing.B) {
	w := scaleWorld(10000, 10)
	r := NewRenderer(testOptions())
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		out := r.Render(w.snap)
		b.SetBytes(int64(len(out.Bytes())))
	}
}

func BenchmarkRenderPartial10kServicesOneChanged(b *testing.B) {
	w := scaleWorld(10000, 10)
	snap := *w.snap
	snap.Full = false
	snap.Changed = map[proxierName]struct{}{w.name("ns1", "svc1"): {}}
	r := NewRenderer(testOptions())
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		_ = r.Render(&snap).Bytes()
	}
}

// BenchmarkRenderFull190Services5Endpoints stays under the large-cluster
// threshold, so every endpoint rule carries its comment (the 10k benchmarks
// omit them): it measures the cost of writing comments.
func BenchmarkRenderFull190Services5Endpoints(b *testing.B) {
	w := scaleWorld(190, 5)
	r := NewRenderer(testOptions())
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		out := r.Render(w.snap)
		b.SetBytes(int64(len(out.Bytes())))
	}
}
