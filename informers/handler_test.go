package informers

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

// nodeOnly handles Nodes and nothing else, as /healthz's Node watcher
// does: per-kind handlers need implement only their kind.
type nodeOnly struct {
	name string
	log  *[]string
}

func (n nodeOnly) OnNodeSet(node *v1.Node)    { *n.log = append(*n.log, n.name+" set "+node.Name) }
func (n nodeOnly) OnNodeDelete(node *v1.Node) { *n.log = append(*n.log, n.name+" delete "+node.Name) }
func (n nodeOnly) OnNodeSynced()              { *n.log = append(*n.log, n.name+" synced") }

func TestEventsReachEveryHandlerOfTheKindInOrder(t *testing.T) {
	var log []string
	first, second := nodeOnly{"first", &log}, nodeOnly{"second", &log}
	e := NodeEvents(first, second)
	e.Add(node("a"))
	e.Update(node("a"), node("b"))
	e.Delete(node("b"))
	e.Synced()
	want := []string{"first set a", "second set a", "first set b", "second set b",
		"first delete b", "second delete b", "first synced", "second synced"}
	if !slices.Equal(log, want) {
		t.Errorf("calls\n%q\nwant\n%q", log, want)
	}
}

func TestHandlersOfRegistersForEveryKind(t *testing.T) {
	a, b := newRecorder(), newRecorder()
	h := HandlersOf(a, b)
	if len(h.Services) != 2 || len(h.EndpointSlices) != 2 || len(h.Nodes) != 2 {
		t.Fatalf("HandlersOf(a, b) = %d/%d/%d handlers, want 2 of each kind",
			len(h.Services), len(h.EndpointSlices), len(h.Nodes))
	}
	h.events().slices.Add(slice("demo", "web-1"))
	for _, rec := range []*recorder{a, b} {
		if got, want := rec.take(), []string{"add EndpointSlice demo/web-1"}; !slices.Equal(got, want) {
			t.Errorf("events %q, want %q", got, want)
		}
	}
}

// TestSerializedCallsNeverOverlapAcrossKinds: the cluster source's three
// informers call from their own goroutines; the handlers must still see one
// call at a time, whatever the kind.
func TestSerializedCallsNeverOverlapAcrossKinds(t *testing.T) {
	rec := newRecorder()
	e := HandlersOf(rec).serialized()
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(3)
		go func() { defer wg.Done(); e.services.Add(svc("demo", "web")) }()
		go func() { defer wg.Done(); e.slices.Delete(slice("demo", "web-1")) }()
		go func() { defer wg.Done(); e.node.Update(node("kpx-node"), node("kpx-node")) }()
	}
	wg.Wait()
	if rec.concurrent.Load() {
		t.Fatal("handler methods were called concurrently")
	}
	if got := len(rec.take()); got != 150 {
		t.Errorf("%d calls, want 150", got)
	}
}

// TestRunManifestsDeliversKindByKind registers different handlers per kind,
// as cmd/kproxy does (the trackers for every kind, /healthz for Nodes).
func TestRunManifestsDeliversKindByKind(t *testing.T) {
	dir := manifestDir(t, map[string]string{"m.yaml": webService + "---\n" + webSlice + "---\n" + kpxNode})
	all, services := newRecorder(), newRecorder()
	var nodeLog []string
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunManifests(ctx, ManifestOptions{Path: dir, PollInterval: time.Hour, Handlers: Handlers{
			Services:       []ServiceHandler{all, services},
			EndpointSlices: []EndpointSliceHandler{all},
			Nodes:          []NodeHandler{all, nodeOnly{"health", &nodeLog}},
		}})
	}()
	all.waitEvents(t, "add Service demo/web", "add EndpointSlice demo/web-1", "set Node kpx-node",
		"synced Services", "synced EndpointSlices", "synced Node")
	cancel()
	if err := awaitReturn(t, "RunManifests", done); err != nil {
		t.Fatal(err)
	}
	if got, want := services.take(), []string{"add Service demo/web", "synced Services"}; !slices.Equal(got, want) {
		t.Errorf("Service-only handler got %q, want %q", got, want)
	}
	if want := []string{"health set kpx-node", "health synced"}; !slices.Equal(nodeLog, want) {
		t.Errorf("Node-only handler got %q, want %q", nodeLog, want)
	}
}

func TestFuncsCallTheirFunctionsAndIgnoreNil(t *testing.T) {
	var calls []string
	h := ServiceFuncs{
		Add:    func(s *v1.Service) { calls = append(calls, "add "+s.Name) },
		Update: func(o, n *v1.Service) { calls = append(calls, "update "+o.Name+" "+n.Name) },
	}
	h.OnServiceAdd(svc("demo", "a"))
	h.OnServiceUpdate(svc("demo", "a"), svc("demo", "b"))
	h.OnServiceDelete(svc("demo", "b")) // nil Delete: ignored
	h.OnServicesSynced()                // nil Synced: ignored
	NodeFuncs{Add: func(n *v1.Node) { calls = append(calls, "set "+n.Name) }}.OnNodeSet(node("n"))
	EndpointSliceFuncs{Synced: func() { calls = append(calls, "slices synced") }}.OnEndpointSlicesSynced()
	if want := []string{"add a", "update a b", "set n", "slices synced"}; !slices.Equal(calls, want) {
		t.Errorf("calls %q, want %q", calls, want)
	}
}
