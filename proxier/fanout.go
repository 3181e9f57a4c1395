package proxier

import (
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
)

// FanOut hands every event to each family's tracker: dual stack is one
// tracker and backend per family, as upstream runs one proxier per family.
// Each tracker keeps only what belongs to its family.
type FanOut []*Tracker

func (f FanOut) OnServiceAdd(svc *v1.Service) {
	for _, t := range f {
		t.OnServiceAdd(svc)
	}
}

func (f FanOut) OnServiceUpdate(o, n *v1.Service) {
	for _, t := range f {
		t.OnServiceUpdate(o, n)
	}
}

func (f FanOut) OnServiceDelete(svc *v1.Service) {
	for _, t := range f {
		t.OnServiceDelete(svc)
	}
}

func (f FanOut) OnServicesSynced() {
	for _, t := range f {
		t.OnServicesSynced()
	}
}

func (f FanOut) OnEndpointSliceAdd(s *discovery.EndpointSlice) {
	for _, t := range f {
		t.OnEndpointSliceAdd(s)
	}
}

func (f FanOut) OnEndpointSliceUpdate(o, n *discovery.EndpointSlice) {
	for _, t := range f {
		t.OnEndpointSliceUpdate(o, n)
	}
}

func (f FanOut) OnEndpointSliceDelete(s *discovery.EndpointSlice) {
	for _, t := range f {
		t.OnEndpointSliceDelete(s)
	}
}

func (f FanOut) OnEndpointSlicesSynced() {
	for _, t := range f {
		t.OnEndpointSlicesSynced()
	}
}

func (f FanOut) OnNodeSet(n *v1.Node) {
	for _, t := range f {
		t.OnNodeSet(n)
	}
}

func (f FanOut) OnNodeDelete(n *v1.Node) {
	for _, t := range f {
		t.OnNodeDelete(n)
	}
}

func (f FanOut) OnNodeSynced() {
	for _, t := range f {
		t.OnNodeSynced()
	}
}
