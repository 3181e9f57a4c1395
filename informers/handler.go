package informers

import (
	"errors"
	"sync"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

// ServiceHandler receives Services. Like upstream's pkg/proxy/config, each
// kind has its own handler interface, so a decorator (validation) or a
// consumer (a tracker, /healthz's Node watcher) implements only the kinds
// it handles. Handlers must not retain or mutate the objects' nested fields
// beyond the call (they are shared with the informer cache).
type ServiceHandler interface {
	OnServiceAdd(svc *v1.Service)
	OnServiceUpdate(oldSvc, newSvc *v1.Service)
	OnServiceDelete(svc *v1.Service)
	// OnServicesSynced is called once, after every initially present
	// Service was delivered.
	OnServicesSynced()
}

// EndpointSliceHandler receives EndpointSlices.
type EndpointSliceHandler interface {
	OnEndpointSliceAdd(slice *discovery.EndpointSlice)
	OnEndpointSliceUpdate(oldSlice, newSlice *discovery.EndpointSlice)
	OnEndpointSliceDelete(slice *discovery.EndpointSlice)
	// OnEndpointSlicesSynced is called once, after every initially present
	// EndpointSlice was delivered.
	OnEndpointSlicesSynced()
}

// NodeHandler receives this node's Node object. Unlike upstream there is no
// separate add and update: the proxy only cares about the current version.
type NodeHandler interface {
	// OnNodeSet is called with this node's object whenever it is added or changes.
	OnNodeSet(node *v1.Node)
	OnNodeDelete(node *v1.Node)
	// OnNodeSynced is called once, after the initial list was delivered.
	OnNodeSynced()
}

// Handlers are what a source delivers to, kind by kind, as upstream
// registers event handlers with each kind's config: every event goes to
// each handler of its kind, in order. A source needs at least one handler
// of each kind.
type Handlers struct {
	Services       []ServiceHandler
	EndpointSlices []EndpointSliceHandler
	Nodes          []NodeHandler
}

// HandlersOf registers each of hs for all three kinds, in order: a tracker
// or a test recorder handles them all.
func HandlersOf[H interface {
	ServiceHandler
	EndpointSliceHandler
	NodeHandler
}](hs ...H) Handlers {
	var out Handlers
	for _, h := range hs {
		out.Services = append(out.Services, h)
		out.EndpointSlices = append(out.EndpointSlices, h)
		out.Nodes = append(out.Nodes, h)
	}
	return out
}

func (h Handlers) validate(source string) error {
	var errs []error
	if len(h.Services) == 0 {
		errs = append(errs, errors.New(source+": Handlers.Services is empty"))
	}
	if len(h.EndpointSlices) == 0 {
		errs = append(errs, errors.New(source+": Handlers.EndpointSlices is empty"))
	}
	if len(h.Nodes) == 0 {
		errs = append(errs, errors.New(source+": Handlers.Nodes is empty"))
	}
	return errors.Join(errs...)
}

// Events are one kind's handler calls as functions. Sources and decorators
// work on Events, so that fan-out to several handlers, serialization and the
// re-applied selection are written once for the three kinds instead of once
// per method. ServiceEvents, EndpointSliceEvents and NodeEvents make them
// from handlers.
type Events[T any] struct {
	Add    func(obj T)
	Update func(oldObj, newObj T)
	Delete func(obj T)
	Synced func()
}

// ServiceEvents delivers each event to every one of hs, in order.
func ServiceEvents(hs ...ServiceHandler) Events[*v1.Service] {
	return fanOut(hs, func(h ServiceHandler) Events[*v1.Service] {
		return Events[*v1.Service]{Add: h.OnServiceAdd, Update: h.OnServiceUpdate, Delete: h.OnServiceDelete,
			Synced: h.OnServicesSynced}
	})
}

// EndpointSliceEvents delivers each event to every one of hs, in order.
func EndpointSliceEvents(hs ...EndpointSliceHandler) Events[*discovery.EndpointSlice] {
	return fanOut(hs, func(h EndpointSliceHandler) Events[*discovery.EndpointSlice] {
		return Events[*discovery.EndpointSlice]{Add: h.OnEndpointSliceAdd, Update: h.OnEndpointSliceUpdate,
			Delete: h.OnEndpointSliceDelete, Synced: h.OnEndpointSlicesSynced}
	})
}

// NodeEvents delivers each event to every one of hs, in order; an add and
// an update are both OnNodeSet.
func NodeEvents(hs ...NodeHandler) Events[*v1.Node] {
	return fanOut(hs, func(h NodeHandler) Events[*v1.Node] {
		return Events[*v1.Node]{Add: h.OnNodeSet, Update: func(_, n *v1.Node) { h.OnNodeSet(n) },
			Delete: h.OnNodeDelete, Synced: h.OnNodeSynced}
	})
}

// fanOut is the one fan-out: each event goes to every handler's Events in order.
func fanOut[H, T any](hs []H, events func(H) Events[T]) Events[T] {
	all := make([]Events[T], len(hs))
	for i, h := range hs {
		all[i] = events(h)
	}
	if len(all) == 1 {
		return all[0]
	}
	return Events[T]{
		Add: func(obj T) {
			for _, e := range all {
				e.Add(obj)
			}
		},
		Update: func(oldObj, newObj T) {
			for _, e := range all {
				e.Update(oldObj, newObj)
			}
		},
		Delete: func(obj T) {
			for _, e := range all {
				e.Delete(obj)
			}
		},
		Synced: func() {
			for _, e := range all {
				e.Synced()
			}
		},
	}
}

// sourceEvents are a source's deliveries, kind by kind.
type sourceEvents struct {
	services Events[*v1.Service]
	slices   Events[*discovery.EndpointSlice]
	node     Events[*v1.Node]
}

func (h Handlers) events() sourceEvents {
	return sourceEvents{
		services: ServiceEvents(h.Services...),
		slices:   EndpointSliceEvents(h.EndpointSlices...),
		node:     NodeEvents(h.Nodes...),
	}
}

// serialized is h's events with no two calls running at once, whatever
// goroutines the calls come from.
func (h Handlers) serialized() sourceEvents {
	var mu sync.Mutex
	e := h.events()
	return sourceEvents{
		services: serialized(&mu, e.services),
		slices:   serialized(&mu, e.slices),
		node:     serialized(&mu, e.node),
	}
}

// synced ends the initial list of every kind, in the order both sources use.
func (e sourceEvents) synced() {
	e.services.Synced()
	e.slices.Synced()
	e.node.Synced()
}
