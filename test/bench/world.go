package bench

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/kproxy/kproxy/proxier"
)

// WorldOptions size the generated cluster.
type WorldOptions struct {
	Services  int
	Endpoints int // per service
}

// World is a generated cluster: one ClusterIP Service (one TCP port) and one
// EndpointSlice of ready endpoints per service.
type World struct {
	Services []*v1.Service
	Slices   []*discovery.EndpointSlice
}

// NewWorld generates services × endpoints objects with distinct, stable
// addresses: ClusterIPs in 172.30.0.0/16 (then 172.31…), pods in 10.0.0.0/8.
func NewWorld(opts WorldOptions) (*World, error) {
	if opts.Services < 1 || opts.Services > 65000 || opts.Endpoints < 1 || opts.Endpoints > 250 {
		return nil, fmt.Errorf("world of %d services × %d endpoints is out of range", opts.Services, opts.Endpoints)
	}
	w := &World{}
	for i := range opts.Services {
		ns, name := fmt.Sprintf("ns%d", i%100), fmt.Sprintf("svc%d", i)
		w.Services = append(w.Services, clusterIPService(ns, name, serviceIP(i)))
		ips := make([]string, opts.Endpoints)
		for j := range ips {
			ips[j] = podIP(i, j)
		}
		w.Slices = append(w.Slices, endpointSlice(ns, name, ips))
	}
	return w, nil
}

func serviceIP(i int) string { return fmt.Sprintf("172.%d.%d.%d", 30+i/65536, i/256%256, i%256) }

// podIP gives endpoint j of service i an address unique in the world.
func podIP(i, j int) string {
	n := i*250 + j + 1
	return fmt.Sprintf("10.%d.%d.%d", n/65536%256, n/256%256, n%256)
}

func clusterIPService(ns, name, ip string) *v1.Service {
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1.ServiceSpec{
			Type: v1.ServiceTypeClusterIP, ClusterIP: ip, ClusterIPs: []string{ip},
			Ports: []v1.ServicePort{{Name: "p80", Port: 80, Protocol: v1.ProtocolTCP}},
		},
	}
}

func endpointSlice(ns, svcName string, ips []string) *discovery.EndpointSlice {
	s := &discovery.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svcName + "-abcde",
			Labels: map[string]string{discovery.LabelServiceName: svcName}},
		AddressType: discovery.AddressTypeIPv4,
		Ports:       []discovery.EndpointPort{{Name: ptr.To("p80"), Port: ptr.To[int32](8080), Protocol: ptr.To(v1.ProtocolTCP)}},
	}
	for _, ip := range ips {
		s.Endpoints = append(s.Endpoints, discovery.Endpoint{Addresses: []string{ip},
			Conditions: discovery.EndpointConditions{Ready: ptr.To(true)}, NodeName: ptr.To("remote")})
	}
	return s
}

// NewTracker returns a tracker that has listed every object of w, as after
// the informers' initial sync.
func (w *World) NewTracker() *proxier.Tracker {
	t := proxier.NewTracker(proxier.TrackerOptions{Family: v1.IPv4Protocol, NodeName: "bench-node", Logger: klog.Background()})
	t.OnNodeSet(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "bench-node"}})
	for _, s := range w.Services {
		t.OnServiceAdd(s)
	}
	for _, s := range w.Slices {
		t.OnEndpointSliceAdd(s)
	}
	t.OnServicesSynced()
	t.OnEndpointSlicesSynced()
	return t
}

// ChangeEndpoint returns a copy of service i's slice whose first endpoint
// has a new address, as a pod replacement does.
func (w *World) ChangeEndpoint(i int) *discovery.EndpointSlice {
	s := w.Slices[i].DeepCopy()
	s.Endpoints[0].Addresses = []string{podIP(i, 249)}
	return s
}
