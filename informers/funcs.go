package informers

import (
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

// ServiceFuncs is a ServiceHandler made of functions, as client-go's
// ResourceEventHandlerFuncs is an informer's handler: a decorator written
// once over Events for every kind (validation) becomes a kind's handler
// with it. A nil function ignores its event.
type ServiceFuncs Events[*v1.Service]

// EndpointSliceFuncs is an EndpointSliceHandler made of functions (see ServiceFuncs).
type EndpointSliceFuncs Events[*discovery.EndpointSlice]

// NodeFuncs is a NodeHandler made of functions (see ServiceFuncs); OnNodeSet
// calls Add, Update is not used.
type NodeFuncs Events[*v1.Node]

var (
	_ ServiceHandler       = ServiceFuncs{}
	_ EndpointSliceHandler = EndpointSliceFuncs{}
	_ NodeHandler          = NodeFuncs{}
)

func (f ServiceFuncs) OnServiceAdd(svc *v1.Service) { call(f.Add, svc) }
func (f ServiceFuncs) OnServiceUpdate(oldSvc, newSvc *v1.Service) {
	callUpdate(f.Update, oldSvc, newSvc)
}
func (f ServiceFuncs) OnServiceDelete(svc *v1.Service) { call(f.Delete, svc) }
func (f ServiceFuncs) OnServicesSynced()               { callSynced(f.Synced) }

func (f EndpointSliceFuncs) OnEndpointSliceAdd(s *discovery.EndpointSlice) { call(f.Add, s) }
func (f EndpointSliceFuncs) OnEndpointSliceUpdate(oldSlice, newSlice *discovery.EndpointSlice) {
	callUpdate(f.Update, oldSlice, newSlice)
}
func (f EndpointSliceFuncs) OnEndpointSliceDelete(s *discovery.EndpointSlice) { call(f.Delete, s) }
func (f EndpointSliceFuncs) OnEndpointSlicesSynced()                          { callSynced(f.Synced) }

func (f NodeFuncs) OnNodeSet(node *v1.Node)    { call(f.Add, node) }
func (f NodeFuncs) OnNodeDelete(node *v1.Node) { call(f.Delete, node) }
func (f NodeFuncs) OnNodeSynced()              { callSynced(f.Synced) }

func call[T any](fn func(T), obj T) {
	if fn != nil {
		fn(obj)
	}
}

func callUpdate[T any](fn func(oldObj, newObj T), oldObj, newObj T) {
	if fn != nil {
		fn(oldObj, newObj)
	}
}

func callSynced(fn func()) {
	if fn != nil {
		fn()
	}
}
