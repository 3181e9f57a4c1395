package proxier

import (
	"fmt"
	"math/rand/v2"
	"testing"

	discovery "k8s.io/api/discovery/v1"
)

// TestSnapshotMapsMatchAFreshTracker drives a tracker through random
// Service and EndpointSlice events; after each Snapshot, whose maps are
// updated in place, they must equal those of a new tracker fed only the
// current objects.
func TestSnapshotMapsMatchAFreshTracker(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	tr := newTestTracker()
	tr.OnServicesSynced()
	tr.OnEndpointSlicesSynced()
	services := map[string]bool{}
	slices := map[string]*discovery.EndpointSlice{}
	for step := range 400 {
		name := fmt.Sprintf("s%d", rng.IntN(12))
		switch rng.IntN(4) {
		case 0:
			if services[name] {
				tr.OnServiceDelete(svc("ns", name, clusterIPOf(name)))
				delete(services, name)
			} else {
				tr.OnServiceAdd(svc("ns", name, clusterIPOf(name)))
				services[name] = true
			}
		case 1:
			if s := slices[name]; s != nil {
				tr.OnEndpointSliceDelete(s)
				delete(slices, name)
				break
			}
			fallthrough
		default:
			var eps []discovery.Endpoint
			for j := range rng.IntN(4) {
				eps = append(eps, ep(fmt.Sprintf("10.1.%d.%d", rng.IntN(3), j+1)))
			}
			s := slice("ns", name, name+"-a", 8080, eps...)
			tr.OnEndpointSliceUpdate(slices[name], s)
			slices[name] = s
		}
		if rng.IntN(3) > 0 {
			continue
		}
		got := tr.Snapshot()
		fresh := newTestTracker()
		for n := range services {
			fresh.OnServiceAdd(svc("ns", n, clusterIPOf(n)))
		}
		for _, s := range slices {
			fresh.OnEndpointSliceAdd(s)
		}
		fresh.OnServicesSynced()
		fresh.OnEndpointSlicesSynced()
		want := fresh.Snapshot()
		if len(got.Services) != len(want.Services) || len(got.Endpoints) != len(want.Endpoints) {
			t.Fatalf("step %d: %d services / %d endpoint sets, want %d / %d", step,
				len(got.Services), len(got.Endpoints), len(want.Services), len(want.Endpoints))
		}
		for n, sp := range want.Services {
			if g := got.Services[n]; g == nil || !g.Equal(sp) || !got.Endpoints[n].Equal(want.Endpoints[n]) {
				t.Fatalf("step %d: %s differs from a fresh tracker's", step, n)
			}
		}
	}
}

func clusterIPOf(name string) string {
	var n int
	fmt.Sscanf(name, "s%d", &n)
	return fmt.Sprintf("172.30.0.%d", n+1)
}
