package vs_test

import (
	"maps"
	"testing"
	"time"

	"github.com/kproxy/kproxy/ipvs/vs"
)

func desired(k vs.ServiceKey, dests ...vs.Destination) vs.DesiredServer {
	return vs.DesiredServer{VirtualServer: vs.VirtualServer{ServiceKey: k, Scheduler: "rr"}, Destinations: dests}
}

// TestReconcilerFullDeletesOnlyOwned: Full lists once, creates what is
// missing and deletes only the undesired virtual servers owned says are
// the caller's.
func TestReconcilerFullDeletesOnlyOwned(t *testing.T) {
	f := vs.NewFake(vs.FakeOptions{})
	mine, foreign := vsKey(vs.TCP, "10.96.0.9", 80), vsKey(vs.TCP, "10.0.0.1", 80)
	for _, k := range []vs.ServiceKey{mine, foreign} {
		if err := f.NewVirtualServer(vs.VirtualServer{ServiceKey: k, Scheduler: "rr"}); err != nil {
			t.Fatal(err)
		}
	}
	r := vs.NewReconciler(vs.ReconcilerOptions{Handle: f})
	want := desired(vsKey(vs.TCP, "10.96.0.1", 80), dest("10.244.1.1", 8080, 1))
	f.ResetCalls()
	st, err := r.Full([]vs.DesiredServer{want}, func(k vs.ServiceKey) bool { return k == mine })
	if err != nil {
		t.Fatal(err)
	}
	if st != (vs.Stats{Created: 1, Deleted: 1, DestsAdded: 1}) || f.Calls()["ListVirtualServers"] != 1 {
		t.Errorf("stats %+v, calls %v; want one created, one deleted, one destination, one listing", st, f.Calls())
	}
	if _, err := f.GetVirtualServer(foreign); err != nil {
		t.Errorf("foreign virtual server gone: %v", err)
	}
}

// TestReconcilerPartialTouchesOnlyWhatItIsGiven: no listing, one read per
// wanted virtual server, and a removed TCP destination with connections
// drains at weight 0 until it is idle.
func TestReconcilerPartialTouchesOnlyWhatItIsGiven(t *testing.T) {
	f := vs.NewFake(vs.FakeOptions{})
	now := time.Unix(1_800_000_000, 0)
	r := vs.NewReconciler(vs.ReconcilerOptions{Handle: f, Now: func() time.Time { return now }})
	k := vsKey(vs.TCP, "10.96.0.1", 80)
	a, b := dest("10.244.1.1", 8080, 1), dest("10.244.1.2", 8080, 1)
	if _, err := r.Full([]vs.DesiredServer{desired(k, a, b)}, func(vs.ServiceKey) bool { return true }); err != nil {
		t.Fatal(err)
	}
	if err := f.SetConnections(k, b.DestKey, 1, 0); err != nil {
		t.Fatal(err)
	}
	f.ResetCalls()
	if _, err := r.Partial([]vs.DesiredServer{desired(k, a)}, nil); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"GetVirtualServer": 1, "ListDestinations": 1, "UpdateDestination": 1}
	if got := f.Calls(); !maps.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
	if q := r.Terminating()[k]; len(q) != 1 || q[0] != b.DestKey {
		t.Fatalf("draining = %v, want %s", q, b.DestKey)
	}
	if err := f.SetConnections(k, b.DestKey, 0, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := r.ProcessTerminating(); n != 1 || err != nil || len(r.Terminating()) != 0 {
		t.Errorf("ProcessTerminating = %d, %v; draining %v; want the idle destination deleted", n, err, r.Terminating())
	}
}
