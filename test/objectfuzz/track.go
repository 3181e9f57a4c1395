package objectfuzz

import (
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	"github.com/kproxy/kproxy/informers"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/apivalidation"
)

// Snapshots feeds the objects to one tracker per family (Families), through
// the validating handlers as the sources do, or directly to show that a
// tracker fed without validation cannot break a backend either, and returns
// their first snapshots, marked full.
func Snapshots(svc *v1.Service, slice *discovery.EndpointSlice, validated bool) []*proxier.Snapshot {
	trackers := make([]*proxier.Tracker, len(Families))
	for i, fam := range Families {
		trackers[i] = proxier.NewTracker(proxier.TrackerOptions{Family: fam, NodeName: NodeName, Logger: klog.Background().V(9)})
	}
	h := informers.HandlersOf(trackers...)
	if validated {
		h = apivalidation.NewHandlers(apivalidation.HandlerOptions{Next: h, Logger: klog.Background().V(9)})
	}
	informers.NodeEvents(h.Nodes...).Add(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: NodeName}, Status: v1.NodeStatus{Addresses: []v1.NodeAddress{
		{Type: v1.NodeInternalIP, Address: "203.0.113.2"}, {Type: v1.NodeInternalIP, Address: "fd00:203::2"}}}})
	informers.ServiceEvents(h.Services...).Add(svc)
	informers.EndpointSliceEvents(h.EndpointSlices...).Add(slice)
	out := make([]*proxier.Snapshot, len(trackers))
	for i, tr := range trackers {
		out[i] = tr.Snapshot()
		out[i].Full = true
	}
	return out
}

// UnprogrammedValidService names the family whose snapshot lacks a Service
// that validation accepted with a cluster IP of that family ("" when there
// is none): validator and converter must agree, or a valid Service silently
// vanishes.
func UnprogrammedValidService(svc *v1.Service, snaps []*proxier.Snapshot) v1.IPFamily {
	if len(apivalidation.ValidateService(svc)) != 0 || svc.Spec.Type == v1.ServiceTypeExternalName {
		return ""
	}
	for i, fam := range Families {
		for _, s := range svc.Spec.ClusterIPs {
			if a, err := apivalidation.ParseAddr(s); err == nil && proxier.FamilyOf(a) == fam && snaps[i].Len() == 0 {
				return fam
			}
		}
	}
	return ""
}
