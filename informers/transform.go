package informers

import (
	"maps"
	"sync"
	"unique"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// slimObject is the informers' transform: it drops what nothing in kproxy
// reads from an object before the informer caches it, where it stays for
// the life of the process (the cache holds every Service and EndpointSlice
// of the cluster; at 10k Services × 10 endpoints, as the API server serves
// them, the dropped fields are about half of the cache). What stays is
// everything the validation handlers, the trackers, the selection and the
// log lines read: names, namespaces, resourceVersion, the labels of the
// selection and the slice's Service, the trigger-time annotation, the
// whole Service spec but its selector, load-balancer ingress, and per
// endpoint its addresses, conditions, node, zone and hints. Endpoint node
// and zone names are interned: the same few hundred strings repeat on
// every endpoint.
//
// It changes the object in place, which client-go allows (the object was
// just decoded and nothing else holds it), and is idempotent, as client-go
// requires: an object may be transformed again (a tombstone wraps a cached
// one; those are passed through untouched). The Node is only stripped of
// managedFields: /healthz and the trackers read its labels, addresses and
// deletion, and there is one.
func slimObject(obj any) (any, error) {
	switch o := obj.(type) {
	case *v1.Service:
		slimMeta(&o.ObjectMeta, keepServiceLabel, nil)
		o.Spec.Selector = nil
		o.Status.Conditions = nil
	case *discovery.EndpointSlice:
		slimMeta(&o.ObjectMeta, keepSliceLabel, keepSliceAnnotation)
		for i := range o.Endpoints {
			slimEndpoint(&o.Endpoints[i])
		}
	default:
		if accessor, err := meta.Accessor(obj); err == nil && accessor.GetManagedFields() != nil {
			accessor.SetManagedFields(nil)
		}
	}
	return obj, nil
}

func keepServiceLabel(key string) bool { return key == LabelServiceProxyName || key == LabelHeadless }

func keepSliceLabel(key string) bool {
	return key == discovery.LabelServiceName || key == LabelServiceProxyName || key == LabelHeadless
}

// keepSliceAnnotation keeps the EndpointSlice controller's change time,
// which network_programming_duration_seconds is measured from.
func keepSliceAnnotation(key string) bool { return key == v1.EndpointsLastChangeTriggerTime }

// slimMeta keeps the labels and annotations the predicates accept (none
// for a nil predicate) and drops managedFields, owner references,
// finalizers and generateName.
func slimMeta(m *metav1.ObjectMeta, keepLabel, keepAnnotation func(string) bool) {
	m.Labels = filterMap(m.Labels, keepLabel)
	m.Annotations = filterMap(m.Annotations, keepAnnotation)
	m.ManagedFields = nil
	m.OwnerReferences = nil
	m.Finalizers = nil
	m.GenerateName = ""
}

// filterMap keeps the entries of in that keep accepts (none for a nil
// keep), nil when none is left. A map of up to 8 entries (one group, it
// would not shrink) is filtered in place, which allocates nothing; a larger
// one is copied so that its unused space is freed.
func filterMap(in map[string]string, keep func(string) bool) map[string]string {
	n := 0
	for k := range in {
		if keep != nil && keep(k) {
			n++
		}
	}
	switch {
	case n == len(in):
		return in
	case n == 0:
		return nil
	case len(in) <= 8:
		maps.DeleteFunc(in, func(k, _ string) bool { return !keep(k) })
		return in
	}
	out := make(map[string]string, n)
	for k, v := range in {
		if keep(k) {
			out[k] = v
		}
	}
	return out
}

// slimEndpoint drops the Pod reference, hostname and deprecated topology
// (read by DNS, not by a proxy), and makes the node and zone names and the
// conditions point at shared values: the decoder allocates each of them
// per endpoint (about 3 MB at 100k endpoints).
func slimEndpoint(ep *discovery.Endpoint) {
	ep.TargetRef = nil
	ep.Hostname = nil
	ep.DeprecatedTopology = nil
	ep.NodeName = sharedString(ep.NodeName)
	ep.Zone = sharedString(ep.Zone)
	c := &ep.Conditions
	c.Ready, c.Serving, c.Terminating = sharedBool(c.Ready), sharedBool(c.Serving), sharedBool(c.Terminating)
	if h := ep.Hints; h != nil {
		for i := range h.ForZones {
			h.ForZones[i].Name = unique.Make(h.ForZones[i].Name).Value()
		}
		for i := range h.ForNodes {
			h.ForNodes[i].Name = unique.Make(h.ForNodes[i].Name).Value()
		}
	}
}

// sharedStrings holds one pointer per distinct node or zone name: a few
// hundred to a few thousand in a cluster, never freed.
var sharedStrings sync.Map // string → *string

// sharedString returns a pointer to a string equal to *s that every
// endpoint with that name shares (nil for nil). Objects in the informer
// cache are never modified, so sharing is safe.
func sharedString(s *string) *string {
	if s == nil {
		return nil
	}
	if p, ok := sharedStrings.Load(*s); ok {
		return p.(*string)
	}
	v := unique.Make(*s).Value()
	p, _ := sharedStrings.LoadOrStore(v, &v)
	return p.(*string)
}

var sharedTrue, sharedFalse = true, false

// sharedBool returns a shared pointer to *b's value (nil for nil).
func sharedBool(b *bool) *bool {
	switch {
	case b == nil:
		return nil
	case *b:
		return &sharedTrue
	}
	return &sharedFalse
}
