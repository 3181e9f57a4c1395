package proxiertest_test

import (
	"testing"

	v1 "k8s.io/api/core/v1"

	pt "github.com/kproxy/kproxy/proxier/proxiertest"
)

func TestWorldGoesThroughValidationAndTheTracker(t *testing.T) {
	w := pt.NewWorld(t, pt.WorldOptions{})
	web := pt.Service("ns", "web", pt.ClusterIP("10.0.0.10"), pt.NodePort(30080), pt.ExternalLocal())
	bad := pt.Service("ns", "bad", pt.ClusterIP("10.0.0.11"), pt.NodePort(70000))
	w.Apply(web, bad, pt.SliceFor(web, pt.Endpoint("10.1.0.1", pt.OnNode(pt.NodeName)), pt.Endpoint("10.1.0.2", pt.OnNode("node-b"))))

	snap := w.Snapshot()
	if !snap.Full {
		t.Error("first snapshot is not full")
	}
	name := pt.Name("ns", "web", "p80")
	if _, ok := snap.Service(name); snap.Len() != 1 || !ok {
		t.Fatalf("services = %v, want only %v (the invalid one is dropped by validation)", snap.SortedNames(), name)
	}
	eps := snap.Endpoints(name)
	if len(eps.Cluster) != 2 || len(eps.Local) != 1 || eps.Local[0].IP.String() != "10.1.0.1" {
		t.Errorf("endpoints cluster=%v local=%v, want 2 cluster and the one on %s as local", eps.Cluster, eps.Local, pt.NodeName)
	}

	w.Apply(pt.SliceFor(web, pt.Endpoint("10.1.0.2", pt.OnNode("node-b"))))
	snap = w.Snapshot()
	if snap.Full {
		t.Error("second snapshot is full")
	}
	if _, ok := snap.Changed[name]; !ok || len(snap.Endpoints(name).Local) != 0 {
		t.Errorf("after the update: changed=%v local=%v, want web changed with no local endpoint", snap.Changed, snap.Endpoints(name).Local)
	}

	w.Delete(web)
	if snap = w.Snapshot(); snap.Len() != 0 {
		t.Errorf("after delete: services %v", snap.SortedNames())
	}
}

func TestUnvalidatedWorldPassesInvalidObjects(t *testing.T) {
	w := pt.NewWorld(t, pt.WorldOptions{Unvalidated: true, Family: v1.IPv6Protocol})
	w.Apply(pt.Service("ns", "bad", pt.ClusterIP("fd00::10"), pt.Port(`p"80`, v1.ProtocolTCP, 80)))
	if snap := w.Snapshot(); snap.Len() != 1 {
		t.Errorf("services = %v, want the unvalidated one", snap.SortedNames())
	}
}
