package informers

import (
	"encoding/json"
	"sort"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Select returns what the proxy on nodeName sees of o: the Services and
// EndpointSlices that pass ProxyLabelSelector, and the Node named nodeName
// (when nodeName is empty, the only Node if there is exactly one).
// ServiceCIDRs (cluster-wide, with no service-proxy label), Ignored and
// Rejected are carried over. The objects are shared with o, not copied.
func (o *Objects) Select(nodeName string) *Objects {
	out := &Objects{ServiceCIDRs: o.ServiceCIDRs, Ignored: o.Ignored, Rejected: o.Rejected}
	for _, svc := range o.Services {
		if isProxied(svc.Labels) {
			out.Services = append(out.Services, svc)
		}
	}
	for _, slice := range o.EndpointSlices {
		if isProxied(slice.Labels) {
			out.EndpointSlices = append(out.EndpointSlices, slice)
		}
	}
	if nodeName == "" && len(o.Nodes) == 1 {
		nodeName = o.Nodes[0].Name
	}
	for _, node := range o.Nodes {
		if node.Name == nodeName {
			out.Nodes = append(out.Nodes, node)
		}
	}
	return out
}

// Replay delivers o to h as informers deliver their initial lists: an Add
// (OnNodeSet for nodes) per object, then OnServicesSynced,
// OnEndpointSlicesSynced and OnNodeSynced. It is the one-shot counterpart of
// RunManifests; call Select first.
func (o *Objects) Replay(h Handlers) {
	e := h.events()
	for _, svc := range o.Services {
		e.services.Add(svc)
	}
	for _, slice := range o.EndpointSlices {
		e.slices.Add(slice)
	}
	for _, node := range o.Nodes {
		e.node.Add(node)
	}
	e.synced()
}

// tracked is an object as last delivered, with the serialized form used to
// detect changes.
type tracked[T metav1.Object] struct {
	obj  T
	form string
}

// objectSet maps namespace/name to the delivered objects of one kind.
type objectSet[T metav1.Object] map[string]tracked[T]

// newObjectSet indexes objs by namespace/name. Serialized forms are taken
// with the resourceVersion cleared, so only content counts as a change.
func newObjectSet[T metav1.Object](objs []T) (objectSet[T], error) {
	set := make(objectSet[T], len(objs))
	for _, obj := range objs {
		obj.SetResourceVersion("")
		form, err := json.Marshal(obj)
		if err != nil {
			return nil, err
		}
		set[obj.GetNamespace()+"/"+obj.GetName()] = tracked[T]{obj: obj, form: string(form)}
	}
	return set, nil
}

// reconcile delivers the differences between the current and next sets in
// key order and returns the set now delivered: unchanged objects keep their
// previous instance; new and changed ones get resourceVersion generation, as
// an API server would bump it.
func reconcile[T metav1.Object](current, next objectSet[T], generation uint64, ev Events[T]) objectSet[T] {
	keys := make([]string, 0, len(current)+len(next))
	for key := range current {
		keys = append(keys, key)
	}
	for key := range next {
		if _, ok := current[key]; !ok {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	rv := strconv.FormatUint(generation, 10)
	delivered := make(objectSet[T], len(next))
	for _, key := range keys {
		old, had := current[key]
		cur, has := next[key]
		switch {
		case had && !has:
			ev.Delete(old.obj)
		case had && old.form == cur.form:
			delivered[key] = old
		case had:
			cur.obj.SetResourceVersion(rv)
			delivered[key] = cur
			ev.Update(old.obj, cur.obj)
		default:
			cur.obj.SetResourceVersion(rv)
			delivered[key] = cur
			ev.Add(cur.obj)
		}
	}
	return delivered
}
