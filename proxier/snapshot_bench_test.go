package proxier

import (
	"fmt"
	"testing"

	discovery "k8s.io/api/discovery/v1"
)

// BenchmarkTrackerSnapshot10kServicesOneChanged is a steady-state sync's
// share of the Tracker: one EndpointSlice changed among 10k Services, then
// the Snapshot and a walk over its service ports (what a backend's
// partial sync does at least once).
func BenchmarkTrackerSnapshot10kServicesOneChanged(b *testing.B) {
	tr := newTestTracker()
	for i := range 10000 {
		name := fmt.Sprintf("s%d", i)
		tr.OnServiceAdd(svc("ns", name, fmt.Sprintf("172.30.%d.%d", i/250, i%250+1)))
		tr.OnEndpointSliceAdd(slice("ns", name, name+"-a", 80, ep(fmt.Sprintf("10.1.%d.%d", i/250, i%250+1))))
	}
	tr.OnServicesSynced()
	tr.OnEndpointSlicesSynced()
	tr.Snapshot()
	slices := [2]*discovery.EndpointSlice{slice("ns", "s0", "s0-a", 80, ep("10.2.0.1")), slice("ns", "s0", "s0-a", 80, ep("10.2.0.2"))}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tr.OnEndpointSliceUpdate(slices[(i+1)%2], slices[i%2])
		i++
		snap := tr.Snapshot()
		if len(snap.Changed) != 1 || countPorts(snap) != 10000 {
			b.Fatalf("changed %d, %d service ports", len(snap.Changed), countPorts(snap))
		}
	}
}

func countPorts(snap *Snapshot) int {
	n := 0
	for range snap.All() {
		n++
	}
	return n
}
