package proxiertest

import (
	"fmt"
	"net/netip"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"

	"github.com/kproxy/kproxy/informers"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/apivalidation"
)

// NodeName is the node a World runs on unless WorldOptions say otherwise.
const NodeName = "node-a"

// WorldOptions configures a World.
type WorldOptions struct {
	// Family is the tracker's family (IPv4 when empty).
	Family v1.IPFamily
	// NodeName defaults to NodeName.
	NodeName string
	// NodeIPs are used when no Node object is applied (the tracker's fallback
	// to the host's interfaces); 192.168.0.2 / fd00::2 when empty.
	NodeIPs []string
	// Unvalidated feeds the tracker directly, skipping apivalidation, to
	// show that a backend survives what validation would have refused.
	Unvalidated bool
}

// World is one family's Tracker fed with API objects. Not for concurrent use.
type World struct {
	tb      testing.TB
	tracker *proxier.Tracker
	svcs    informers.Events[*v1.Service]
	slices  informers.Events[*discovery.EndpointSlice]
	nodes   informers.Events[*v1.Node]
	applied map[string]runtime.Object
	synced  bool
}

// NewWorld returns an empty, initialized world: its first Snapshot is full.
func NewWorld(tb testing.TB, opts WorldOptions) *World {
	tb.Helper()
	if opts.Family == "" {
		opts.Family = v1.IPv4Protocol
	}
	if opts.NodeName == "" {
		opts.NodeName = NodeName
	}
	fallback := nodeIPs(tb, opts)
	tr := proxier.NewTracker(proxier.TrackerOptions{Family: opts.Family, NodeName: opts.NodeName,
		Logger:          klog.Background().V(9),
		NodeIPsFallback: func(v1.IPFamily) []netip.Addr { return fallback }})
	h := informers.HandlersOf(tr)
	if !opts.Unvalidated {
		h = apivalidation.NewHandlers(apivalidation.HandlerOptions{Next: h, Logger: klog.Background().V(9)})
	}
	w := &World{tb: tb, tracker: tr, applied: map[string]runtime.Object{},
		svcs: informers.ServiceEvents(h.Services...), slices: informers.EndpointSliceEvents(h.EndpointSlices...),
		nodes: informers.NodeEvents(h.Nodes...)}
	w.svcs.Synced()
	w.slices.Synced()
	return w
}

func nodeIPs(tb testing.TB, opts WorldOptions) []netip.Addr {
	ips := opts.NodeIPs
	if len(ips) == 0 {
		ips = []string{"192.168.0.2"}
		if opts.Family == v1.IPv6Protocol {
			ips = []string{"fd00::2"}
		}
	}
	out := make([]netip.Addr, len(ips))
	for i, s := range ips {
		a, err := netip.ParseAddr(s)
		if err != nil {
			tb.Fatalf("proxiertest: node IP %q: %v", s, err)
		}
		out[i] = a
	}
	return out
}

// Tracker is the world's tracker, for tests that drive a Runner.
func (w *World) Tracker() *proxier.Tracker { return w.tracker }

// Apply adds the objects (Services, EndpointSlices, Nodes), or updates those
// applied before under the same kind, namespace and name.
func (w *World) Apply(objs ...runtime.Object) *World {
	w.tb.Helper()
	for _, o := range objs {
		key := w.key(o)
		old, seen := w.applied[key]
		w.applied[key] = o
		switch o := o.(type) {
		case *v1.Service:
			if seen {
				w.svcs.Update(old.(*v1.Service), o)
			} else {
				w.svcs.Add(o)
			}
		case *discovery.EndpointSlice:
			if seen {
				w.slices.Update(old.(*discovery.EndpointSlice), o)
			} else {
				w.slices.Add(o)
			}
		case *v1.Node:
			w.nodes.Add(o)
		}
	}
	return w
}

// ApplyService applies svc and its EndpointSlice holding eps (SliceFor),
// the usual pair of a backend test; with no eps the slice is empty.
func (w *World) ApplyService(svc *v1.Service, eps ...discovery.Endpoint) *World {
	w.tb.Helper()
	return w.Apply(svc, SliceFor(svc, eps...))
}

// Delete removes objects applied before.
func (w *World) Delete(objs ...runtime.Object) *World {
	w.tb.Helper()
	for _, o := range objs {
		key := w.key(o)
		if _, ok := w.applied[key]; !ok {
			w.tb.Fatalf("proxiertest: delete of %s, never applied", key)
		}
		delete(w.applied, key)
		switch o := o.(type) {
		case *v1.Service:
			w.svcs.Delete(o)
		case *discovery.EndpointSlice:
			w.slices.Delete(o)
		case *v1.Node:
			w.nodes.Delete(o)
		}
	}
	return w
}

func (w *World) key(o runtime.Object) string {
	switch o := o.(type) {
	case *v1.Service:
		return "Service/" + o.Namespace + "/" + o.Name
	case *discovery.EndpointSlice:
		return "EndpointSlice/" + o.Namespace + "/" + o.Name
	case *v1.Node:
		return "Node/" + o.Name
	}
	w.tb.Fatalf("proxiertest: cannot apply a %T", o)
	return ""
}

// Snapshot returns what a Runner would hand a backend now: the changes since
// the previous Snapshot, full the first time. Like the Tracker's, it is
// valid until the next call (its accessors panic after that), so a test
// that wants a partial snapshot applies a change and calls Snapshot again.
func (w *World) Snapshot() *proxier.Snapshot {
	s := w.tracker.Snapshot()
	s.Full = !w.synced
	w.synced = true
	return s
}

// Full returns a Snapshot marked full, as after a failed sync or ForceFull.
func (w *World) Full() *proxier.Snapshot {
	s := w.Snapshot()
	s.Full = true
	return s
}

// Name is the ServicePortName of a Service's port, TCP unless proto is given.
func Name(ns, svc, port string, proto ...v1.Protocol) proxier.ServicePortName {
	p := v1.ProtocolTCP
	if len(proto) > 0 {
		p = proto[0]
	}
	n := proxier.ServicePortName{Port: port, Protocol: p}
	n.Namespace, n.Name = ns, svc
	return n
}

// String of a world names its family, for test failure messages.
func (w *World) String() string { return fmt.Sprintf("world(%s)", w.tracker.Family()) }
