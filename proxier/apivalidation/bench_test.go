package apivalidation_test

import (
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/kproxy/kproxy/informers"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/apivalidation"
)

// benchObjects is a cluster of n NodePort Services with one slice of k
// endpoints each, as an informer's initial list delivers it.
func benchObjects(n, k int) ([]*v1.Service, []*discovery.EndpointSlice) {
	svcs := make([]*v1.Service, n)
	slices := make([]*discovery.EndpointSlice, n)
	for i := range n {
		ip := fmt.Sprintf("172.30.%d.%d", i>>8, i&255)
		svcs[i] = &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("ns%d", i%100), Name: fmt.Sprintf("svc%d", i)},
			Spec: v1.ServiceSpec{Type: v1.ServiceTypeNodePort, ClusterIP: ip, ClusterIPs: []string{ip},
				IPFamilies:            []v1.IPFamily{v1.IPv4Protocol},
				Ports:                 []v1.ServicePort{{Name: "p80", Port: 80, Protocol: v1.ProtocolTCP, NodePort: int32(30000 + i%2000)}},
				SessionAffinity:       v1.ServiceAffinityNone,
				ExternalTrafficPolicy: v1.ServiceExternalTrafficPolicyCluster,
				InternalTrafficPolicy: ptr.To(v1.ServiceInternalTrafficPolicyCluster)},
		}
		s := &discovery.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: svcs[i].Namespace, Name: svcs[i].Name + "-abcde",
				Labels: map[string]string{discovery.LabelServiceName: svcs[i].Name}},
			AddressType: discovery.AddressTypeIPv4,
			Ports:       []discovery.EndpointPort{{Name: ptr.To("p80"), Port: ptr.To(int32(8080)), Protocol: ptr.To(v1.ProtocolTCP)}},
		}
		for j := range k {
			s.Endpoints = append(s.Endpoints, discovery.Endpoint{
				Addresses:  []string{fmt.Sprintf("10.%d.%d.%d", i>>8, i&255, j+1)},
				Conditions: discovery.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
				NodeName:   ptr.To(fmt.Sprintf("node-%d", j)),
			})
		}
		slices[i] = s
	}
	return svcs, slices
}

func BenchmarkValidateService(b *testing.B) {
	svcs, _ := benchObjects(1000, 10)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if errs := apivalidation.ValidateService(svcs[i%len(svcs)]); len(errs) != 0 {
			b.Fatal(errs)
		}
		i++
	}
}

func BenchmarkValidateEndpointSlice10Endpoints(b *testing.B) {
	_, slices := benchObjects(1000, 10)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if errs := apivalidation.ValidateEndpointSlice(slices[i%len(slices)]); len(errs) != 0 {
			b.Fatal(errs)
		}
		i++
	}
}

// BenchmarkInitialList10kServices10Endpoints replays an initial list of 10k
// Services and 10k slices of 10 endpoints into a tracker and takes the
// first snapshot, without and with validation in front: the difference is
// what validation adds to startup.
func BenchmarkInitialList10kServices10Endpoints(b *testing.B) {
	svcs, slices := benchObjects(10000, 10)
	for _, validated := range []bool{false, true} {
		b.Run(fmt.Sprintf("validated=%v", validated), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tr := proxier.NewTracker(proxier.TrackerOptions{Family: v1.IPv4Protocol, NodeName: "node-1", Logger: klog.Background()})
				h := informers.HandlersOf(tr)
				if validated {
					h = apivalidation.NewHandlers(apivalidation.HandlerOptions{Next: h, Logger: klog.Background()})
				}
				services, endpoints := informers.ServiceEvents(h.Services...), informers.EndpointSliceEvents(h.EndpointSlices...)
				for _, s := range svcs {
					services.Add(s)
				}
				for _, s := range slices {
					endpoints.Add(s)
				}
				services.Synced()
				endpoints.Synced()
				if snap := tr.Snapshot(); snap.Len() != len(svcs) {
					b.Fatalf("%d service ports", snap.Len())
				}
			}
		})
	}
}
