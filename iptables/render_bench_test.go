package iptables

import (
	"testing"

	"github.com/kproxy/kproxy/proxier"
)

// oneChanged takes w's full snapshot, then changes ns1/svc1 (one endpoint
// fewer) and returns the partial snapshot that names only it.
func oneChanged(b *testing.B, n, k int) *proxier.Snapshot {
	w := scaleWorld(b, n, k)
	w.Snapshot()
	snap := w.ApplyService(scaleService(1), scaleEndpoints(1, k-1)...).Snapshot()
	if _, ok := snap.Changed[spn("ns1", "svc1")]; snap.Full || len(snap.Changed) != 1 || !ok {
		b.Fatalf("partial snapshot: full %v, changed %v", snap.Full, snap.Changed)
	}
	return snap
}

func BenchmarkRenderFull10kServices10Endpoints(b *testing.B) {
	snap := scaleWorld(b, 10000, 10).Snapshot()
	r := NewRenderer(testOptions())
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		out := r.Render(snap)
		b.SetBytes(int64(len(out.Bytes())))
	}
}

// BenchmarkRenderPartial10kServicesOneChanged starts from a fresh Renderer,
// so its first op renders every service port (a cold render, ~100 times a
// partial one) and ns/op includes that render divided by b.N, which varies
// with the machine's speed: its allocs/op is about 44 + 410k/b.N. The Warm
// variant below measures only partial renders.
func BenchmarkRenderPartial10kServicesOneChanged(b *testing.B) {
	snap := oneChanged(b, 10000, 10)
	r := NewRenderer(testOptions())
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		_ = r.Render(snap).Bytes()
	}
}

// BenchmarkRenderPartial10kServicesOneChangedWarm is the partial render of a
// running proxier: its Renderer has rendered the full snapshot before, as in
// BenchmarkSyncPartial10kServicesOneChanged, so every op is one partial
// render of the same snapshot and ns/op does not depend on b.N.
func BenchmarkRenderPartial10kServicesOneChangedWarm(b *testing.B) {
	w := scaleWorld(b, 10000, 10)
	r := NewRenderer(testOptions())
	_ = r.Render(w.Snapshot()).Bytes()
	snap := w.ApplyService(scaleService(1), scaleEndpoints(1, 9)...).Snapshot()
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Render(snap).Bytes()
	}
}

// BenchmarkRenderFull190Services5Endpoints stays under the large-cluster
// threshold, so every endpoint rule carries its comment (the 10k benchmarks
// omit them): it measures the cost of writing comments.
func BenchmarkRenderFull190Services5Endpoints(b *testing.B) {
	snap := scaleWorld(b, 190, 5).Snapshot()
	r := NewRenderer(testOptions())
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		out := r.Render(snap)
		b.SetBytes(int64(len(out.Bytes())))
	}
}
