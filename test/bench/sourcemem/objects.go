package sourcemem

import (
	"fmt"
	"net/netip"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// Namespace holds the generated objects; NodeName is the proxy's Node.
const (
	Namespace = "sourcemem"
	NodeName  = "kpx-mem-node"
)

// created is every object's creation time: fixed, so runs compare.
var created = metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))

func serviceName(i int) string { return fmt.Sprintf("svc-%05d", i) }

func uid(kind string, i int) types.UID {
	return types.UID(fmt.Sprintf("%08x-0000-4000-8000-%012x", i, len(kind)))
}

// Service is Service i as an API server returns it after kubectl apply:
// defaulted spec, the last-applied annotation, an app label and the field
// manager's entry.
func Service(i int) *v1.Service {
	name := serviceName(i)
	ip := netip.AddrFrom4([4]byte{10, 96 + byte(i>>16&0x0f), byte(i >> 8), byte(i)}).String()
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: Namespace, Name: name, UID: uid("Service", i), ResourceVersion: fmt.Sprint(1000 + 2*i),
			CreationTimestamp: created,
			Labels:            map[string]string{"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "sourcemem"},
			Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": fmt.Sprintf(
				`{"apiVersion":"v1","kind":"Service","metadata":{"annotations":{},"labels":{"app.kubernetes.io/name":%q,`+
					`"app.kubernetes.io/part-of":"sourcemem"},"name":%q,"namespace":%q},"spec":{"ports":[{"name":"http",`+
					`"port":80,"protocol":"TCP","targetPort":8080}],"selector":{"app.kubernetes.io/name":%q}}}`+"\n",
				name, name, Namespace, name)},
			ManagedFields: []metav1.ManagedFieldsEntry{{
				Manager: "kubectl-client-side-apply", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1",
				Time: &created, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(
					`{"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}},` +
						`"f:labels":{".":{},"f:app.kubernetes.io/name":{},"f:app.kubernetes.io/part-of":{}}},"f:spec":` +
						`{"f:internalTrafficPolicy":{},"f:ports":{".":{},"k:{\"port\":80,\"protocol\":\"TCP\"}":{".":{},` +
						`"f:name":{},"f:port":{},"f:protocol":{},"f:targetPort":{}}},"f:selector":{},"f:sessionAffinity":{},` +
						`"f:type":{}}}`)},
			}},
		},
		Spec: v1.ServiceSpec{
			Type:     v1.ServiceTypeClusterIP,
			Selector: map[string]string{"app.kubernetes.io/name": name},
			Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP,
				TargetPort: intstr.FromInt32(8080)}},
			ClusterIP: ip, ClusterIPs: []string{ip},
			IPFamilies:            []v1.IPFamily{v1.IPv4Protocol},
			IPFamilyPolicy:        ptr.To(v1.IPFamilyPolicySingleStack),
			SessionAffinity:       v1.ServiceAffinityNone,
			InternalTrafficPolicy: ptr.To(v1.ServiceInternalTrafficPolicyCluster),
		},
	}
}

// EndpointSlice is Service i's slice as the EndpointSlice controller
// writes it: generated name, owner reference, managed-by and service-name
// labels, the trigger-time annotation, per endpoint a Pod reference, node,
// zone and conditions, and the controller's managedFields entry.
func EndpointSlice(i, endpoints int) *discovery.EndpointSlice {
	name := serviceName(i)
	s := &discovery.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: Namespace, Name: fmt.Sprintf("%s-%05x", name, i*7919%0xfffff), GenerateName: name + "-",
			UID: uid("EndpointSlice", i), ResourceVersion: fmt.Sprint(1001 + 2*i), Generation: 1,
			CreationTimestamp: created,
			Labels: map[string]string{
				discovery.LabelServiceName: name, discovery.LabelManagedBy: "endpointslice-controller.k8s.io",
				"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "sourcemem",
			},
			Annotations: map[string]string{v1.EndpointsLastChangeTriggerTime: created.UTC().Format(time.RFC3339)},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: name,
				UID: uid("Service", i), Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
		},
		AddressType: discovery.AddressTypeIPv4,
		Ports: []discovery.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(8080)),
			Protocol: ptr.To(v1.ProtocolTCP)}},
	}
	fields := []byte(`{"f:addressType":{},"f:endpoints":{},"f:metadata":{"f:annotations":{".":{},` +
		`"f:endpoints.kubernetes.io/last-change-trigger-time":{}},"f:generateName":{},"f:labels":{".":{},` +
		`"f:app.kubernetes.io/name":{},"f:app.kubernetes.io/part-of":{},"f:endpointslice.kubernetes.io/managed-by":{},` +
		`"f:kubernetes.io/service-name":{}},"f:ownerReferences":{".":{},"k:{\"uid\":\"` + string(uid("Service", i)) +
		`\"}":{}}},"f:ports":{}}`)
	s.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager",
		Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "discovery.k8s.io/v1", Time: &created,
		FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: fields}}}
	for j := range endpoints {
		n := uint32(i*endpoints+j) + 1
		ip := netip.AddrFrom4([4]byte{10, 128 + byte(n>>16&0x7f), byte(n >> 8), byte(n)}).String()
		pod := fmt.Sprintf("%s-7d9c6b5f4-%05x", name, j*104729%0xfffff)
		s.Endpoints = append(s.Endpoints, discovery.Endpoint{
			Addresses:  []string{ip},
			Conditions: discovery.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
			TargetRef: &v1.ObjectReference{Kind: "Pod", Namespace: Namespace, Name: pod,
				UID: uid("Pod", int(n))},
			NodeName: ptr.To(fmt.Sprintf("worker-%03d", int(n)%100)),
			Zone:     ptr.To(fmt.Sprintf("zone-%c", 'a'+rune(n%3))),
		})
	}
	return s
}

// Node is the proxy's Node, as a kubelet registers it (abridged status).
func Node() *v1.Node {
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: NodeName, UID: uid("Node", 0), ResourceVersion: "5",
			CreationTimestamp: created, Labels: map[string]string{
				"kubernetes.io/hostname": NodeName, "kubernetes.io/os": "linux",
				"topology.kubernetes.io/zone": "zone-a",
			}},
		Status: v1.NodeStatus{Addresses: []v1.NodeAddress{
			{Type: v1.NodeInternalIP, Address: "192.168.50.1"}, {Type: v1.NodeHostName, Address: NodeName},
		}},
	}
}
