package proxier

import "slices"

// LabelTopologyZone is the Node label that names the node's zone for topology hints.
const LabelTopologyZone = "topology.kubernetes.io/zone"

// CategorizeEndpoints splits a service port's endpoints into what
// cluster-policy and local-policy traffic may use, as upstream's
// CategorizeEndpoints does: ready endpoints (topology-filtered for cluster
// policy), falling back to serving-terminating ones when none are ready.
func CategorizeEndpoints(all []Endpoint, svc *ServicePort, node *NodeInfo) *EndpointSet {
	set := &EndpointSet{All: all}
	for i := range all {
		if all[i].Usable() {
			set.HasAny = true
			break
		}
	}
	if !set.HasAny {
		return set
	}
	if svc.UsesClusterEndpoints() {
		set.Cluster = clusterEndpoints(all, node)
	}
	if svc.UsesLocalEndpoints() {
		set.Local = localEndpoints(all)
	}
	return set
}

func clusterEndpoints(all []Endpoint, node *NodeInfo) []Endpoint {
	ready := filterEndpoints(all, func(e *Endpoint) bool { return e.Ready })
	if len(ready) == 0 {
		return filterEndpoints(all, func(e *Endpoint) bool { return e.Serving && e.Terminating })
	}
	switch topologyMode(ready, node) {
	case topologySameNode:
		return filterEndpoints(ready, func(e *Endpoint) bool { return slices.Contains(e.NodeHints(), node.Name) })
	case topologySameZone:
		zone := node.Labels[LabelTopologyZone]
		return filterEndpoints(ready, func(e *Endpoint) bool { return slices.Contains(e.ZoneHints(), zone) })
	}
	return ready
}

func localEndpoints(all []Endpoint) []Endpoint {
	local := filterEndpoints(all, func(e *Endpoint) bool { return e.IsLocal && e.Ready })
	if len(local) == 0 {
		local = filterEndpoints(all, func(e *Endpoint) bool { return e.IsLocal && e.Serving && e.Terminating })
	}
	return local
}

type topology int

const (
	topologyNone topology = iota
	topologySameZone
	topologySameNode
)

// topologyMode applies hints only when every ready endpoint carries them and
// at least one is meant for this node (or its zone); otherwise no filtering,
// so a half-rolled-out hint set never blackholes traffic.
func topologyMode(ready []Endpoint, node *NodeInfo) topology {
	if node == nil {
		return topologyNone
	}
	if allHinted(ready, (*Endpoint).NodeHints, node.Name) {
		return topologySameNode
	}
	if zone := node.Labels[LabelTopologyZone]; zone != "" &&
		allHinted(ready, (*Endpoint).ZoneHints, zone) {
		return topologySameZone
	}
	return topologyNone
}

func allHinted(ready []Endpoint, hints func(*Endpoint) []string, want string) bool {
	if want == "" {
		return false
	}
	found := false
	for i := range ready {
		h := hints(&ready[i])
		if len(h) == 0 {
			return false
		}
		if slices.Contains(h, want) {
			found = true
		}
	}
	return found
}

// filterEndpoints returns the endpoints keep accepts. When it accepts all of
// them (the common case: every endpoint ready, no hints) the result shares
// in's array, clipped so an append cannot write into it: at 10k services ×
// 10 endpoints, copying would hold another 13 MB per category.
func filterEndpoints(in []Endpoint, keep func(*Endpoint) bool) []Endpoint {
	n := 0
	for i := range in {
		if keep(&in[i]) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	if n == len(in) {
		return in[:n:n]
	}
	out := make([]Endpoint, 0, n)
	for i := range in {
		if keep(&in[i]) {
			out = append(out, in[i])
		}
	}
	return out
}
