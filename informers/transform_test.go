package informers

import (
	"reflect"
	"testing"
	"unsafe"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// fatMeta is metadata as an API server serves it, with the given labels
// and annotations.
func fatMeta(name string, labels, annotations map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Namespace: "ns", Name: name, UID: "0b8a4c1e", ResourceVersion: "42", Generation: 3,
		GenerateName: name + "-", Labels: labels, Annotations: annotations,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: "web", UID: "0b8a"}},
		Finalizers:      []string{"example.com/hold"},
		ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager", FieldsType: "FieldsV1"}},
	}
}

func TestSlimObject(t *testing.T) {
	tests := []struct {
		name      string
		in, want  any
		unchanged bool
	}{
		{
			name: "Service keeps the selection labels and every spec field but the selector",
			in: &v1.Service{
				ObjectMeta: fatMeta("web", map[string]string{"app": "web", LabelServiceProxyName: "other",
					LabelHeadless: ""}, map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"}),
				Spec: v1.ServiceSpec{
					Selector: map[string]string{"app": "web"}, Type: v1.ServiceTypeLoadBalancer,
					ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"}, IPFamilies: []v1.IPFamily{v1.IPv4Protocol},
					Ports:                    []v1.ServicePort{{Name: "http", Port: 80, NodePort: 30080, Protocol: v1.ProtocolTCP}},
					ExternalIPs:              []string{"192.0.2.1"},
					LoadBalancerSourceRanges: []string{"198.51.100.0/24"},
					ExternalTrafficPolicy:    v1.ServiceExternalTrafficPolicyLocal, HealthCheckNodePort: 31000,
					InternalTrafficPolicy: ptr.To(v1.ServiceInternalTrafficPolicyLocal),
					SessionAffinity:       v1.ServiceAffinityClientIP,
					SessionAffinityConfig: &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To(int32(60))}},
					TrafficDistribution:   ptr.To("PreferClose"),
				},
				Status: v1.ServiceStatus{
					LoadBalancer: v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{IP: "203.0.113.7",
						IPMode: ptr.To(v1.LoadBalancerIPModeVIP)}}},
					Conditions: []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue}},
				},
			},
			want: &v1.Service{
				ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "0b8a4c1e", ResourceVersion: "42",
					Generation: 3, Labels: map[string]string{LabelServiceProxyName: "other", LabelHeadless: ""}},
				Spec: v1.ServiceSpec{
					Type:      v1.ServiceTypeLoadBalancer,
					ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"}, IPFamilies: []v1.IPFamily{v1.IPv4Protocol},
					Ports:                    []v1.ServicePort{{Name: "http", Port: 80, NodePort: 30080, Protocol: v1.ProtocolTCP}},
					ExternalIPs:              []string{"192.0.2.1"},
					LoadBalancerSourceRanges: []string{"198.51.100.0/24"},
					ExternalTrafficPolicy:    v1.ServiceExternalTrafficPolicyLocal, HealthCheckNodePort: 31000,
					InternalTrafficPolicy: ptr.To(v1.ServiceInternalTrafficPolicyLocal),
					SessionAffinity:       v1.ServiceAffinityClientIP,
					SessionAffinityConfig: &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To(int32(60))}},
					TrafficDistribution:   ptr.To("PreferClose"),
				},
				Status: v1.ServiceStatus{LoadBalancer: v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{
					IP: "203.0.113.7", IPMode: ptr.To(v1.LoadBalancerIPModeVIP)}}}},
			},
		},
		{
			name: "EndpointSlice keeps its Service, the trigger time and what the proxy reads per endpoint",
			in: &discovery.EndpointSlice{
				ObjectMeta: fatMeta("web-x1", map[string]string{discovery.LabelServiceName: "web",
					discovery.LabelManagedBy: "endpointslice-controller.k8s.io", "app": "web"},
					map[string]string{v1.EndpointsLastChangeTriggerTime: "2026-01-02T03:04:05Z", "other": "x"}),
				AddressType: discovery.AddressTypeIPv4,
				Ports:       []discovery.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(8080)), Protocol: ptr.To(v1.ProtocolTCP)}},
				Endpoints: []discovery.Endpoint{{
					Addresses:          []string{"10.244.1.11", "10.244.1.12"},
					Conditions:         discovery.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(true), Terminating: ptr.To(true)},
					Hostname:           ptr.To("web-0"),
					TargetRef:          &v1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "web-0"},
					DeprecatedTopology: map[string]string{"kubernetes.io/hostname": "node-a"},
					NodeName:           ptr.To("node-a"), Zone: ptr.To("zone-a"),
					Hints: &discovery.EndpointHints{ForZones: []discovery.ForZone{{Name: "zone-a"}},
						ForNodes: []discovery.ForNode{{Name: "node-a"}}},
				}},
			},
			want: &discovery.EndpointSlice{
				ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web-x1", UID: "0b8a4c1e", ResourceVersion: "42",
					Generation: 3, Labels: map[string]string{discovery.LabelServiceName: "web"},
					Annotations: map[string]string{v1.EndpointsLastChangeTriggerTime: "2026-01-02T03:04:05Z"}},
				AddressType: discovery.AddressTypeIPv4,
				Ports:       []discovery.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(8080)), Protocol: ptr.To(v1.ProtocolTCP)}},
				Endpoints: []discovery.Endpoint{{
					Addresses:  []string{"10.244.1.11", "10.244.1.12"},
					Conditions: discovery.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(true), Terminating: ptr.To(true)},
					NodeName:   ptr.To("node-a"), Zone: ptr.To("zone-a"),
					Hints: &discovery.EndpointHints{ForZones: []discovery.ForZone{{Name: "zone-a"}},
						ForNodes: []discovery.ForNode{{Name: "node-a"}}},
				}},
			},
		},
		{
			name: "Node loses only managedFields",
			in: &v1.Node{ObjectMeta: fatMeta("node-a", map[string]string{"topology.kubernetes.io/zone": "zone-a"}, nil),
				Status: v1.NodeStatus{Addresses: []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "192.168.50.1"}}}},
			want: &v1.Node{ObjectMeta: func() metav1.ObjectMeta {
				m := fatMeta("node-a", map[string]string{"topology.kubernetes.io/zone": "zone-a"}, nil)
				m.ManagedFields = nil
				return m
			}(), Status: v1.NodeStatus{Addresses: []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "192.168.50.1"}}}},
		},
		{
			name: "a tombstone passes through",
			in:   cache.DeletedFinalStateUnknown{Key: "ns/web", Obj: &v1.Service{ObjectMeta: fatMeta("web", nil, nil)}},
			want: cache.DeletedFinalStateUnknown{Key: "ns/web", Obj: &v1.Service{ObjectMeta: fatMeta("web", nil, nil)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := slimObject(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("slimObject:\n got %+v\nwant %+v", got, tt.want)
			}
			again, err := slimObject(got)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(again, tt.want) {
				t.Errorf("slimObject is not idempotent:\n got %+v\nwant %+v", again, tt.want)
			}
		})
	}
}

// TestSlimObjectInternsEndpointNames checks that equal node and zone names
// of different endpoints end up sharing one string.
func TestSlimObjectInternsEndpointNames(t *testing.T) {
	mk := func() *discovery.EndpointSlice {
		// Built from bytes so that the two slices' strings start out distinct.
		return &discovery.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"},
			Endpoints: []discovery.Endpoint{{NodeName: ptr.To(string([]byte("node-a"))),
				Zone:       ptr.To(string([]byte("zone-a"))),
				Conditions: discovery.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(false)}}}}
	}
	a, b := mk(), mk()
	if _, err := slimObject(a); err != nil {
		t.Fatal(err)
	}
	if _, err := slimObject(b); err != nil {
		t.Fatal(err)
	}
	same := func(x, y string) bool { return x == y && unsafe.StringData(x) == unsafe.StringData(y) }
	if !same(*a.Endpoints[0].NodeName, *b.Endpoints[0].NodeName) || !same(*a.Endpoints[0].Zone, *b.Endpoints[0].Zone) {
		t.Error("equal node and zone names do not share their bytes after slimObject")
	}
	ea, eb := a.Endpoints[0], b.Endpoints[0]
	if ea.NodeName != eb.NodeName || ea.Zone != eb.Zone {
		t.Error("equal node and zone names are not the same pointer after slimObject")
	}
	c := ea.Conditions
	if c.Ready != eb.Conditions.Ready || c.Serving != eb.Conditions.Serving || c.Ready == c.Serving ||
		!*c.Ready || *c.Serving || c.Terminating != nil {
		t.Errorf("conditions not shared by value, or changed: %v %v %v", c.Ready, c.Serving, c.Terminating)
	}
}
