package informers

import (
	"bytes"
	"fmt"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

// recorder is a Handler that records calls as "op Kind namespace/name"
// strings and keeps the latest object of each key.
type recorder struct {
	inFlight   atomic.Int32
	concurrent atomic.Bool

	mu       sync.Mutex
	events   []string
	services map[string]*v1.Service
	slices   map[string]*discovery.EndpointSlice
	node     *v1.Node
}

func newRecorder() *recorder {
	return &recorder{services: map[string]*v1.Service{}, slices: map[string]*discovery.EndpointSlice{}}
}

func (r *recorder) record(event string, apply func()) {
	if r.inFlight.Add(1) > 1 {
		r.concurrent.Store(true)
	}
	defer r.inFlight.Add(-1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, event)
	if apply != nil {
		apply()
	}
}

func key(ns, name string) string { return ns + "/" + name }

func (r *recorder) OnServiceAdd(svc *v1.Service) {
	r.record("add Service "+key(svc.Namespace, svc.Name), func() { r.services[key(svc.Namespace, svc.Name)] = svc })
}

func (r *recorder) OnServiceUpdate(oldSvc, newSvc *v1.Service) {
	r.record(fmt.Sprintf("update Service %s", key(newSvc.Namespace, newSvc.Name)), func() {
		if oldSvc.Name != newSvc.Name || oldSvc.Namespace != newSvc.Namespace {
			r.events = append(r.events, "BUG: update with different keys")
		}
		r.services[key(newSvc.Namespace, newSvc.Name)] = newSvc
	})
}

func (r *recorder) OnServiceDelete(svc *v1.Service) {
	r.record("delete Service "+key(svc.Namespace, svc.Name), func() { delete(r.services, key(svc.Namespace, svc.Name)) })
}

func (r *recorder) OnServicesSynced() { r.record("synced Services", nil) }

func (r *recorder) OnEndpointSliceAdd(s *discovery.EndpointSlice) {
	r.record("add EndpointSlice "+key(s.Namespace, s.Name), func() { r.slices[key(s.Namespace, s.Name)] = s })
}

func (r *recorder) OnEndpointSliceUpdate(oldSlice, newSlice *discovery.EndpointSlice) {
	r.record("update EndpointSlice "+key(newSlice.Namespace, newSlice.Name), func() {
		r.slices[key(newSlice.Namespace, newSlice.Name)] = newSlice
	})
}

func (r *recorder) OnEndpointSliceDelete(s *discovery.EndpointSlice) {
	r.record("delete EndpointSlice "+key(s.Namespace, s.Name), func() { delete(r.slices, key(s.Namespace, s.Name)) })
}

func (r *recorder) OnEndpointSlicesSynced() { r.record("synced EndpointSlices", nil) }

func (r *recorder) OnNodeSet(node *v1.Node) {
	r.record("set Node "+node.Name, func() { r.node = node })
}

func (r *recorder) OnNodeDelete(node *v1.Node) {
	r.record("delete Node "+node.Name, func() { r.node = nil })
}

func (r *recorder) OnNodeSynced() { r.record("synced Node", nil) }

// take returns the events recorded since the last take.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

func (r *recorder) service(k string) *v1.Service {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.services[k]
}

func (r *recorder) currentNode() *v1.Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.node
}

// waitEvents polls until the events recorded since the last take contain
// want (in any order), then returns them all. Extra events fail the test
// unless they are listed in want.
func (r *recorder) waitEvents(t *testing.T, want ...string) []string {
	t.Helper()
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = append(got, r.take()...)
		if containsAll(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for events\n got: %q\nwant: %q", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if extra := without(got, want); len(extra) > 0 {
		t.Fatalf("unexpected events %q (all: %q)", extra, got)
	}
	if r.concurrent.Load() {
		t.Fatal("handler methods were called concurrently")
	}
	return got
}

// expectQuiet checks that nothing was recorded since the last take.
func (r *recorder) expectQuiet(t *testing.T) {
	t.Helper()
	if got := r.take(); len(got) > 0 {
		t.Fatalf("unexpected events %q", got)
	}
}

func containsAll(got, want []string) bool {
	return len(without(want, got)) == 0
}

// without returns the elements of a not matched one-for-one by b.
func without(a, b []string) []string {
	rest := slices.Clone(b)
	var out []string
	for _, s := range a {
		if i := slices.Index(rest, s); i >= 0 {
			rest = slices.Delete(rest, i, i+1)
			continue
		}
		out = append(out, s)
	}
	return out
}

// indexOf fails the test when event is missing.
func indexOf(t *testing.T, events []string, event string) int {
	t.Helper()
	i := slices.Index(events, event)
	if i < 0 {
		t.Fatalf("event %q missing from %s", event, strings.Join(events, ", "))
	}
	return i
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stopTimeout bounds how long a source may take to return once its context
// is cancelled.
const stopTimeout = 10 * time.Second

// awaitReturn waits for the result of a source started on another
// goroutine. A source that does not return in time fails the test at once,
// with every goroutine's stack, instead of hanging until the test binary's
// timeout.
func awaitReturn(t *testing.T, what string, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(stopTimeout):
		var stacks bytes.Buffer
		if err := pprof.Lookup("goroutine").WriteTo(&stacks, 1); err != nil {
			fmt.Fprintf(&stacks, "(goroutine dump failed: %v)", err)
		}
		t.Fatalf("%s did not return within %v of its context ending; goroutines:\n%s", what, stopTimeout, stacks.String())
		return nil
	}
}
