package apivalidation

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/klog/v2"

	"github.com/kproxy/kproxy/informers"
)

// recorder is the downstream Handler: it records the calls it gets.
type recorder struct{ events []string }

func (r *recorder) add(format string, args ...any) {
	r.events = append(r.events, fmt.Sprintf(format, args...))
}

func svcEvent(s *v1.Service) string { return s.Namespace + "/" + s.Name + "@" + s.ResourceVersion }
func sliceEvent(s *discovery.EndpointSlice) string {
	return s.Namespace + "/" + s.Name + "@" + s.ResourceVersion + "->" + s.Labels[discovery.LabelServiceName]
}

func (r *recorder) OnServiceAdd(s *v1.Service) { r.add("add svc %s", svcEvent(s)) }
func (r *recorder) OnServiceUpdate(o, s *v1.Service) {
	r.add("update svc %s to %s", svcEvent(o), svcEvent(s))
}
func (r *recorder) OnServiceDelete(s *v1.Service) { r.add("delete svc %s", svcEvent(s)) }
func (r *recorder) OnServicesSynced()             { r.add("services synced") }
func (r *recorder) OnEndpointSliceAdd(s *discovery.EndpointSlice) {
	r.add("add slice %s", sliceEvent(s))
}
func (r *recorder) OnEndpointSliceUpdate(o, s *discovery.EndpointSlice) {
	r.add("update slice %s to %s", sliceEvent(o), sliceEvent(s))
}
func (r *recorder) OnEndpointSliceDelete(s *discovery.EndpointSlice) {
	r.add("delete slice %s", sliceEvent(s))
}
func (r *recorder) OnEndpointSlicesSynced() { r.add("slices synced") }
func (r *recorder) OnNodeSet(n *v1.Node)    { r.add("node %s", n.Name) }
func (r *recorder) OnNodeDelete(n *v1.Node) { r.add("node deleted %s", n.Name) }
func (r *recorder) OnNodeSynced()           { r.add("node synced") }

// validating is the three kinds' validating handlers in one value, so a
// test drives them like a source would.
type validating struct {
	informers.ServiceHandler
	informers.EndpointSliceHandler
	informers.NodeHandler
}

// newTestHandler returns the validating handlers, their downstream recorder
// and the log lines.
func newTestHandler() (validating, *recorder, *[]string) {
	var logs []string
	logger := funcr.New(func(prefix, args string) { logs = append(logs, args) }, funcr.Options{})
	rec := &recorder{}
	opts := HandlerOptions{Next: informers.HandlersOf(rec), Logger: logger}
	return validating{NewServiceHandler(opts), NewEndpointSliceHandler(opts), NewNodeHandler(opts)}, rec, &logs
}

func version(s *v1.Service, rv string) *v1.Service {
	c := s.DeepCopy()
	c.ResourceVersion = rv
	return c
}

func TestHandlerServices(t *testing.T) {
	h, rec, logs := newTestHandler()
	good := lbService()
	bad := lbService(func(s *v1.Service) { s.Spec.Ports[0].Name = "p\"\n-A INPUT -j ACCEPT" })
	other := lbService(func(s *v1.Service) { s.Name = "svc2" })

	h.OnServiceAdd(version(good, "1"))
	h.OnServiceUpdate(version(good, "1"), version(bad, "2")) // valid -> invalid: kept
	h.OnServiceUpdate(version(bad, "2"), version(bad, "3"))  // still invalid
	h.OnServiceUpdate(version(bad, "3"), version(good, "4")) // invalid -> valid: update from what downstream has
	h.OnServiceAdd(version(lbService(func(s *v1.Service) { s.Name = "svc2"; s.Spec.HealthCheckNodePort = 70000 }), "5"))
	h.OnServiceUpdate(version(other, "5"), version(other, "6")) // first valid version: an add
	h.OnServiceDelete(version(good, "7"))
	h.OnServiceDelete(version(lbService(func(s *v1.Service) { s.Name = "never" }), "8")) // unknown: nothing downstream
	h.OnServicesSynced()

	want := []string{"add svc ns1/svc1@1", "update svc ns1/svc1@1 to ns1/svc1@4", "add svc ns1/svc2@6",
		"delete svc ns1/svc1@4", "services synced"}
	if !slices.Equal(rec.events, want) {
		t.Errorf("downstream got\n%q\nwant\n%q", rec.events, want)
	}
	if len(*logs) != 3 {
		t.Fatalf("%d log lines, want one per rejected event:\n%s", len(*logs), strings.Join(*logs, "\n"))
	}
	for i, wantText := range []string{"keeping its last valid version", "keeping its last valid version", "Ignoring invalid Service"} {
		l := (*logs)[i]
		if !strings.Contains(l, wantText) || !strings.Contains(l, `"service"={"name"="svc`) || !strings.Contains(l, "spec.") {
			t.Errorf("log line %d = %s, want %q, the object and the field path", i, l, wantText)
		}
	}
}

func TestHandlerSlices(t *testing.T) {
	h, rec, logs := newTestHandler()
	v := func(rv, svc string, mods ...func(*discovery.EndpointSlice)) *discovery.EndpointSlice {
		s := goodSlice(mods...)
		s.ResourceVersion, s.Labels[discovery.LabelServiceName] = rv, svc
		return s
	}
	zone := func(s *discovery.EndpointSlice) { s.Endpoints[0].Addresses = []string{"fe80::1%eth0"} }
	h.OnEndpointSliceAdd(v("1", "svc1"))
	// An invalid update that also names another Service is not applied...
	h.OnEndpointSliceUpdate(v("1", "svc1"), v("2", "svc2", zone))
	// ...so the delete that follows reaches downstream as the version it has.
	h.OnEndpointSliceDelete(v("2", "svc2", zone))
	h.OnEndpointSliceAdd(v("3", "svc3", zone))
	h.OnEndpointSliceDelete(v("3", "svc3", zone))
	want := []string{"add slice ns1/svc1-abc.12@1->svc1", "delete slice ns1/svc1-abc.12@1->svc1"}
	if !slices.Equal(rec.events, want) {
		t.Errorf("downstream got\n%q\nwant\n%q", rec.events, want)
	}
	if len(*logs) != 2 || !strings.Contains((*logs)[0], `"endpointSlice"={"name"="svc1-abc.12" "namespace"="ns1"}`) ||
		!strings.Contains((*logs)[1], "endpoints[0].addresses[0]") {
		t.Errorf("log lines:\n%s", strings.Join(*logs, "\n"))
	}
}

// TestHandlerLogLineCannotBeForged checks that a name with a quote and a
// newline is logged escaped, on one line.
func TestHandlerLogLineCannotBeForged(t *testing.T) {
	h, _, logs := newTestHandler()
	h.OnServiceAdd(lbService(func(s *v1.Service) { s.Name = "q\"uote\n-A INPUT -j ACCEPT" }))
	if len(*logs) != 1 {
		t.Fatalf("%d log lines", len(*logs))
	}
	if l := (*logs)[0]; strings.Contains(l, "\n") || !strings.Contains(l, `"service"="ns1/q\"uote\n-A INPUT -j ACCEPT"`) {
		t.Errorf("log line = %s", l)
	}
	if got := logRef(lbService()); got != klog.KObj(lbService()) {
		t.Errorf("a clean name is logged as %v, want klog.KObj", got)
	}
}

func TestHandlerNodeAlwaysPassesAndLogsOncePerChange(t *testing.T) {
	h, rec, logs := newTestHandler()
	node := &v1.Node{Status: v1.NodeStatus{Addresses: []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "fe80::1%eth0"}}}}
	node.Name = "n1"
	h.OnNodeSet(node)
	h.OnNodeSet(node)
	fixed := node.DeepCopy()
	fixed.Status.Addresses[0].Address = "192.168.0.2"
	h.OnNodeSet(fixed)
	if want := []string{"node n1", "node n1", "node n1"}; !slices.Equal(rec.events, want) {
		t.Errorf("downstream got %q, want %q", rec.events, want)
	}
	if len(*logs) != 1 || !strings.Contains((*logs)[0], "status.addresses[0].address") {
		t.Errorf("log lines:\n%s", strings.Join(*logs, "\n"))
	}
}

// TestHandlersValidateOnceForEveryDownstreamHandler: with two families
// there are two trackers behind validation; a rejected object is still one
// log line, and a valid one reaches both.
func TestHandlersValidateOnceForEveryDownstreamHandler(t *testing.T) {
	var logs []string
	logger := funcr.New(func(prefix, args string) { logs = append(logs, args) }, funcr.Options{})
	v4, v6 := &recorder{}, &recorder{}
	hs := NewHandlers(HandlerOptions{Next: informers.HandlersOf(v4, v6), Logger: logger})
	if len(hs.Services) != 1 || len(hs.EndpointSlices) != 1 || len(hs.Nodes) != 1 {
		t.Fatalf("NewHandlers = %d/%d/%d handlers, want one validating handler per kind",
			len(hs.Services), len(hs.EndpointSlices), len(hs.Nodes))
	}
	src := informers.ServiceEvents(hs.Services...)
	src.Add(version(lbService(), "1"))
	src.Add(version(lbService(func(s *v1.Service) { s.Name = "bad"; s.Spec.Ports[0].Port = 0 }), "2"))
	src.Synced()
	informers.NodeEvents(hs.Nodes...).Add(&v1.Node{})
	want := []string{"add svc ns1/svc1@1", "services synced", "node "}
	for name, rec := range map[string]*recorder{"first": v4, "second": v6} {
		if !slices.Equal(rec.events, want) {
			t.Errorf("%s downstream handler got %q, want %q", name, rec.events, want)
		}
	}
	if len(logs) != 1 {
		t.Errorf("%d log lines, want one for the one rejected Service:\n%s", len(logs), strings.Join(logs, "\n"))
	}
}
