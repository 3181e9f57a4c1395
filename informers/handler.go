package informers

import (
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

// Handler receives the objects kproxy watches. Both sources (an API server
// through client-go informers, and offline manifest files) call the same
// methods, so everything downstream is exercised the same way. Handlers must
// not retain or mutate the objects' nested fields beyond the call (they are
// shared with the informer cache).
type Handler interface {
	OnServiceAdd(svc *v1.Service)
	OnServiceUpdate(oldSvc, newSvc *v1.Service)
	OnServiceDelete(svc *v1.Service)
	OnServicesSynced()

	OnEndpointSliceAdd(slice *discovery.EndpointSlice)
	OnEndpointSliceUpdate(oldSlice, newSlice *discovery.EndpointSlice)
	OnEndpointSliceDelete(slice *discovery.EndpointSlice)
	OnEndpointSlicesSynced()

	// OnNodeSet is called with this node's object whenever it is added or changes.
	OnNodeSet(node *v1.Node)
	OnNodeDelete(node *v1.Node)
	OnNodeSynced()
}
