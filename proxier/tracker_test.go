package proxier

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kproxy/kproxy/proxier/metrics"
)

func newTestTracker() *Tracker {
	return NewTracker(TrackerOptions{Family: v1.IPv4Protocol, NodeName: "node-a", Logger: klog.Background()})
}

func TestTrackerMergesSlicesAndReportsChanges(t *testing.T) {
	tr := newTestTracker()
	tr.OnServiceAdd(svc("ns1", "svc1", "172.30.0.41"))
	tr.OnEndpointSliceAdd(slice("ns1", "svc1", "a", 80, ep("10.180.0.2"), ep("10.180.0.1")))
	tr.OnEndpointSliceAdd(slice("ns1", "svc1", "b", 80, ep("10.180.0.3"), ep("10.180.0.1")))
	snap := tr.Snapshot()
	name := spn("ns1", "svc1", "p80")
	if _, ok := snap.Changed[name]; !ok || len(snap.Changed) != 1 {
		t.Fatalf("changed = %v", snap.Changed)
	}
	got := epStrings(snap.Endpoints(name).All)
	if want := []string{"10.180.0.1:80", "10.180.0.2:80", "10.180.0.3:80"}; !slices.Equal(got, want) {
		t.Fatalf("endpoints %v, want %v", got, want)
	}

	// An update that changes nothing yields an empty change set.
	tr.OnEndpointSliceUpdate(nil, slice("ns1", "svc1", "b", 80, ep("10.180.0.3"), ep("10.180.0.1")))
	if snap := tr.Snapshot(); len(snap.Changed) != 0 || snap.Len() != 1 {
		t.Fatalf("no-op update: changed=%v services=%d", snap.Changed, snap.Len())
	}

	tr.OnEndpointSliceDelete(slice("ns1", "svc1", "b", 80))
	snap = tr.Snapshot()
	if _, ok := snap.Changed[name]; !ok {
		t.Fatal("slice deletion must mark the service changed")
	}
	if got := epStrings(snap.Endpoints(name).All); !slices.Equal(got, []string{"10.180.0.1:80", "10.180.0.2:80"}) {
		t.Fatalf("after delete: %v", got)
	}

	tr.OnServiceDelete(svc("ns1", "svc1", "172.30.0.41"))
	snap = tr.Snapshot()
	if _, ok := snap.Changed[name]; !ok || snap.Len() != 0 {
		t.Fatalf("service deletion: changed=%v services=%d", snap.Changed, snap.Len())
	}
}

func TestTrackerSkipsInvalidObjectsKeepsValid(t *testing.T) {
	tr := newTestTracker()
	tr.OnServiceAdd(svc("ns", "good", "10.0.0.1"))
	tr.OnServiceAdd(svc("ns", "badip", "10.0.0.999"))
	bad := slice("ns", "good", "mixed", 80, ep("10.1.0.1"), ep("fd00::1"), ep("not-an-ip"))
	tr.OnEndpointSliceAdd(bad)
	noPort := slice("ns", "good", "noport", 0, ep("10.1.0.2"))
	tr.OnEndpointSliceAdd(noPort)
	snap := tr.Snapshot()
	if snap.Len() != 1 {
		t.Fatalf("want only the valid service, got %d", snap.Len())
	}
	if got := epStrings(snap.Endpoints(spn("ns", "good", "p80")).All); !slices.Equal(got, []string{"10.1.0.1:80"}) {
		t.Fatalf("endpoints %v", got)
	}
}

func TestTrackerIgnoresOtherFamilyAndUnlabelledSlices(t *testing.T) {
	tr := newTestTracker()
	tr.OnServiceAdd(svc("ns", "s", "10.0.0.1"))
	v6 := slice("ns", "s", "v6", 80, ep("fd00::1"))
	v6.AddressType = discovery.AddressTypeIPv6
	tr.OnEndpointSliceAdd(v6)
	orphan := slice("ns", "s", "orphan", 80, ep("10.1.0.9"))
	orphan.Labels = nil
	tr.OnEndpointSliceAdd(orphan)
	snap := tr.Snapshot()
	if n := len(snap.Endpoints(spn("ns", "s", "p80")).All); n != 0 {
		t.Fatalf("want no endpoints, got %d", n)
	}
}

func TestTrackerDuplicateEndpointPrefersNonTerminating(t *testing.T) {
	tr := newTestTracker()
	tr.OnServiceAdd(svc("ns", "s", "10.0.0.1"))
	tr.OnEndpointSliceAdd(slice("ns", "s", "a", 80, ep("10.1.0.1", terminating(true))))
	tr.OnEndpointSliceAdd(slice("ns", "s", "b", 80, ep("10.1.0.1")))
	set := tr.Snapshot().Endpoints(spn("ns", "s", "p80"))
	if len(set.All) != 1 || !set.All[0].Ready {
		t.Fatalf("want the ready copy, got %+v", set.All)
	}
}

func TestTrackerRequeueCarriesChanges(t *testing.T) {
	tr := newTestTracker()
	tr.OnServiceAdd(svc("ns", "s", "10.0.0.1"))
	failed := tr.Snapshot()
	tr.Requeue(failed)
	again := tr.Snapshot()
	if _, ok := again.Changed[spn("ns", "s", "p80")]; !ok {
		t.Fatal("requeued change lost")
	}
}

func TestTrackerStaleUDPEndpoints(t *testing.T) {
	tr := newTestTracker()
	s := svc("ns", "dns", "10.0.0.10", withPorts(v1.ServicePort{Name: "p80", Port: 53, Protocol: v1.ProtocolUDP}))
	tr.OnServiceAdd(s)
	sl := slice("ns", "dns", "a", 53, ep("10.1.0.1"), ep("10.1.0.2"))
	sl.Ports[0].Protocol = ptrProto(v1.ProtocolUDP)
	tr.OnEndpointSliceAdd(sl)
	tr.Snapshot()
	sl2 := sl.DeepCopy()
	sl2.Endpoints = sl2.Endpoints[:1]
	tr.OnEndpointSliceUpdate(sl, sl2)
	snap := tr.Snapshot()
	name := ServicePortName{NamespacedName: nn("ns", "dns"), Port: "p80", Protocol: v1.ProtocolUDP}
	if got := epStrings(snap.StaleEndpoints[name]); !slices.Equal(got, []string{"10.1.0.2:53"}) {
		t.Fatalf("stale = %v", got)
	}
}

func ptrProto(p v1.Protocol) *v1.Protocol { return &p }

func TestTrackerNodeZoneChangeRecategorizes(t *testing.T) {
	tr := newTestTracker()
	tr.OnServiceAdd(svc("ns", "s", "10.0.0.1"))
	tr.OnEndpointSliceAdd(slice("ns", "s", "a", 80, ep("10.1.0.1", zoneHints("a")), ep("10.1.0.2", zoneHints("b"))))
	tr.OnNodeSet(node("node-a", "a"))
	snap := tr.Snapshot()
	if got := epStrings(snap.Endpoints(spn("ns", "s", "p80")).Cluster); !slices.Equal(got, []string{"10.1.0.1:80"}) {
		t.Fatalf("zone a: %v", got)
	}
	tr.OnNodeSet(node("node-a", "b"))
	snap = tr.Snapshot()
	if got := epStrings(snap.Endpoints(spn("ns", "s", "p80")).Cluster); !slices.Equal(got, []string{"10.1.0.2:80"}) {
		t.Fatalf("zone b: %v", got)
	}
	if len(snap.Changed) != 1 {
		t.Fatalf("zone change must mark the service changed: %v", snap.Changed)
	}
}

func node(name, zone string) *v1.Node {
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{LabelTopologyZone: zone}}}
}

// TestCategorizeEndpoints holds the categorization cases no golden case
// (cmd/kproxy/testdata/golden) shows: ready over terminating, not-ready
// endpoints, the Local policies and zone hints are traced there.
func TestCategorizeEndpoints(t *testing.T) {
	local := func(ip string, opts ...epOpt) discovery.Endpoint { return ep(ip, append(opts, onNode("node-a"))...) }
	remote := func(ip string, opts ...epOpt) discovery.Endpoint { return ep(ip, append(opts, onNode("node-b"))...) }
	tests := []struct {
		name             string
		svc              *v1.Service
		eps              []discovery.Endpoint
		cluster, localEp []string
		hasAny           bool
	}{
		{name: "terminating fallback when none ready", svc: svc("ns", "s", "10.0.0.1"),
			eps:     []discovery.Endpoint{remote("10.1.0.1", terminating(true)), remote("10.1.0.2", terminating(false))},
			cluster: []string{"10.1.0.1:80"}, hasAny: true},
		{name: "local terminating fallback", svc: svc("ns", "s", "10.0.0.1", withITPLocal()),
			eps:     []discovery.Endpoint{local("10.1.0.1", terminating(true)), remote("10.1.0.2")},
			localEp: []string{"10.1.0.1:80"}, hasAny: true},
		{name: "hints for other zones only ignored", svc: svc("ns", "s", "10.0.0.1"),
			eps:     []discovery.Endpoint{remote("10.1.0.1", zoneHints("c")), remote("10.1.0.2", zoneHints("b"))},
			cluster: []string{"10.1.0.1:80", "10.1.0.2:80"}, hasAny: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTestTracker()
			tr.OnNodeSet(node("node-a", "a"))
			tr.OnServiceAdd(tt.svc)
			tr.OnEndpointSliceAdd(slice("ns", "s", "x", 80, tt.eps...))
			set := tr.Snapshot().Endpoints(spn("ns", "s", "p80"))
			if got := epStrings(set.Cluster); !slices.Equal(got, tt.cluster) && !(len(got) == 0 && len(tt.cluster) == 0) {
				t.Errorf("cluster %v, want %v", got, tt.cluster)
			}
			if got := epStrings(set.Local); !slices.Equal(got, tt.localEp) && !(len(got) == 0 && len(tt.localEp) == 0) {
				t.Errorf("local %v, want %v", got, tt.localEp)
			}
			if set.HasAny != tt.hasAny {
				t.Errorf("hasAny %v, want %v", set.HasAny, tt.hasAny)
			}
		})
	}
}

type fakeBackend struct {
	fail  int
	snaps []*Snapshot
	// lens are the snaps' service port counts, read during Sync (a
	// snapshot is not valid after the next one).
	lens []int
	// during, when set, runs inside each Sync (e.g. a ForceFull racing it).
	during func()
}

func (b *fakeBackend) Sync(_ context.Context, s *Snapshot) (SyncResult, error) {
	b.snaps = append(b.snaps, s)
	b.lens = append(b.lens, s.Len())
	if b.during != nil {
		b.during()
	}
	if b.fail > 0 {
		b.fail--
		return SyncResult{}, errors.New("restore failed")
	}
	return SyncResult{Full: s.Full}, nil
}

func TestRunnerRetriesFullAfterFailure(t *testing.T) {
	tr := newTestTracker()
	be := &fakeBackend{fail: 1}
	r, err := NewRunner(RunnerOptions{Tracker: tr, Backend: be, RetryInterval: time.Second,
		FullSyncInterval: time.Hour, Logger: klog.Background()})
	if err != nil {
		t.Fatal(err)
	}
	tr.OnServiceAdd(svc("ns", "s", "10.0.0.1"))
	if err := r.SyncOnce(context.Background()); err == nil {
		t.Fatal("want error from failing backend")
	}
	if err := r.SyncOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	second := be.snaps[1]
	if !second.Full {
		t.Error("sync after a failure must be full")
	}
	if _, ok := second.Changed[spn("ns", "s", "p80")]; !ok {
		t.Error("changes of the failed sync must be carried over")
	}
	tr.OnServiceAdd(svc("ns", "t", "10.0.0.2"))
	if err := r.SyncOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if be.snaps[2].Full {
		t.Error("sync after a success within the full-sync interval must be partial")
	}
}

// A ForceFull that arrives while a sync runs (the tamper monitor found the
// rules gone mid-sync) must make the next sync full, not be cleared by the
// end of the sync that began before it.
func TestRunnerKeepsForceFullRequestedDuringSync(t *testing.T) {
	tr := newTestTracker()
	be := &fakeBackend{}
	r, err := NewRunner(RunnerOptions{Tracker: tr, Backend: be, RetryInterval: time.Second,
		FullSyncInterval: time.Hour, Logger: klog.Background()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tr.OnServiceAdd(svc("ns", "s", "10.0.0.1"))
	if err := r.SyncOnce(ctx); err != nil { // the first sync is full
		t.Fatal(err)
	}
	be.during = r.ForceFull
	if err := r.SyncOnce(ctx); err != nil {
		t.Fatal(err)
	}
	be.during = nil
	if be.snaps[1].Full {
		t.Fatal("second sync is full without a request; the test proves nothing")
	}
	if err := r.SyncOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if !be.snaps[2].Full {
		t.Error("ForceFull during a sync was lost: the next sync is partial")
	}
	if err := r.SyncOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if be.snaps[3].Full {
		t.Error("the request was served; the sync after it must be partial again")
	}
}

func TestRunnerWaitsForInitialSyncAndCoalesces(t *testing.T) {
	tr := newTestTracker()
	be := &fakeBackend{}
	r, err := NewRunner(RunnerOptions{Tracker: tr, Backend: be, RetryInterval: time.Second,
		FullSyncInterval: time.Hour, MinInterval: 0, Logger: klog.Background()})
	if err != nil {
		t.Fatal(err)
	}
	tr.opts.OnChange = r.Trigger
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	tr.OnServiceAdd(svc("ns", "s", "10.0.0.1"))
	tr.OnServicesSynced()
	tr.OnEndpointSlicesSynced()
	deadline := time.Now().Add(5 * time.Second)
	for {
		tr.mu.Lock()
		n := len(tr.state)
		tr.mu.Unlock()
		if n == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if len(be.snaps) == 0 {
		t.Fatal("runner never synced after initialization")
	}
	if !be.snaps[0].Full || be.lens[0] != 1 {
		t.Fatalf("first sync must be full with the listed service: %+v", be.snaps[0])
	}
}

func TestTrackerCountsChanges(t *testing.T) {
	m := metrics.New()
	tr := NewTracker(TrackerOptions{Family: v1.IPv4Protocol, NodeName: "node-a", Logger: klog.Background(), Metrics: m})
	tr.OnServiceAdd(svc("ns", "s", "10.0.0.1"))
	tr.OnEndpointSliceAdd(slice("ns", "s", "a", 80, ep("10.1.0.1")))
	tr.OnEndpointSliceUpdate(nil, slice("ns", "s", "a", 80, ep("10.1.0.2")))
	if got := metricValue(t, m.ServiceChangesTotal); got != 1 {
		t.Errorf("service changes total %v, want 1", got)
	}
	if got := metricValue(t, m.EndpointChangesPending); got != 2 {
		t.Errorf("endpoint changes pending %v, want 2", got)
	}
	tr.Snapshot()
	if got := metricValue(t, m.EndpointChangesPending); got != 0 {
		t.Errorf("endpoint changes pending after snapshot %v, want 0", got)
	}
	if got := metricValue(t, m.EndpointChangesTotal); got != 2 {
		t.Errorf("endpoint changes total %v, want 2", got)
	}
}

func metricValue(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// TestStoreSliceKeepsSlicesSortedByName checks the per-Service list of
// slices mergeSlices reads: sorted by name through adds, updates and
// deletes, and gone with the last slice.
func TestStoreSliceKeepsSlicesSortedByName(t *testing.T) {
	tr := newTestTracker()
	svcName := nn("ns", "web")
	eps := func(port int32) sliceEndpoints {
		return sliceEndpoints{{name: ServicePortName{NamespacedName: svcName, Port: "p"}, eps: []Endpoint{{Port: port}}}}
	}
	names := func() string {
		var out []string
		for _, s := range tr.slices[svcName] {
			out = append(out, fmt.Sprintf("%s:%d", s.name, s.eps[0].eps[0].Port))
		}
		return strings.Join(out, ",")
	}
	steps := []struct {
		name    string
		port    int32
		deleted bool
		want    string
	}{
		{"c", 1, false, "c:1"},
		{"a", 2, false, "a:2,c:1"},
		{"b", 3, false, "a:2,b:3,c:1"},
		{"a", 4, false, "a:4,b:3,c:1"},
		{"x", 0, true, "a:4,b:3,c:1"},
		{"b", 0, true, "a:4,c:1"},
		{"a", 0, true, "c:1"},
		{"c", 0, true, ""},
	}
	for i, s := range steps {
		tr.storeSlice(svcName, s.name, eps(s.port), s.deleted)
		if got := names(); got != s.want {
			t.Fatalf("step %d (%s deleted=%v): slices %q, want %q", i, s.name, s.deleted, got, s.want)
		}
	}
	if _, ok := tr.slices[svcName]; ok {
		t.Error("the Service's entry stays after its last slice was deleted")
	}
}
