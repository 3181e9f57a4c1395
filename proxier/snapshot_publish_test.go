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
		if got.Len() != want.Len() {
			t.Fatalf("step %d: %d service ports, want %d", step, got.Len(), want.Len())
		}
		for n, sp := range want.All() {
			if g, _ := got.Service(n); g == nil || !g.Equal(sp) || !got.Endpoints(n).Equal(want.Endpoints(n)) {
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

// TestSnapshotUsedAfterTheNextPanics: the model a snapshot shows is updated
// in place by the next Tracker.Snapshot, so reading an older snapshot's
// service ports must fail loudly rather than show the newer state.
func TestSnapshotUsedAfterTheNextPanics(t *testing.T) {
	tr := newTestTracker()
	tr.OnServiceAdd(svc("ns", "s0", clusterIPOf("s0")))
	old := tr.Snapshot()
	if old.Len() != 1 {
		t.Fatalf("first snapshot has %d service ports, want 1", old.Len())
	}
	seq := old.All()
	cur := tr.Snapshot()
	uses := map[string]func(){
		"Len":         func() { old.Len() },
		"Service":     func() { old.Service(spn("ns", "s0", "p80")) },
		"Endpoints":   func() { old.Endpoints(spn("ns", "s0", "p80")) },
		"SortedNames": func() { old.SortedNames() },
		"All":         func() { old.All() },
		"All, made before the next Snapshot": func() {
			for range seq {
			}
		},
	}
	for name, use := range uses {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("a stale snapshot was read without a panic")
				}
			}()
			use()
		})
	}
	if cur.Len() != 1 || (&Snapshot{}).Len() != 0 {
		t.Errorf("current snapshot: %d service ports; zero Snapshot: %d; want 1 and 0", cur.Len(), (&Snapshot{}).Len())
	}
}
