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

func BenchmarkRenderPartial10kServicesOneChanged(b *testing.B) {
	snap := oneChanged(b, 10000, 10)
	r := NewRenderer(testOptions())
	b.ReportAllocs()
	b.ResetTimer()
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
