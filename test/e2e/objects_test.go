package e2e

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kproxy/kproxy/test/netns"
)

const (
	nodeName  = "kpx-node"
	node2Name = "kpx-node2"
	zoneA     = "zone-a"
	testNS    = "e2e"
	// podPort is where pod servers listen: TCP line server, UDP and SCTP echo.
	podPort = 8080
)

// Node is this node's object: its IP and zone label.
func nodeObject(w *netns.World) *v1.Node {
	return &v1.Node{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
		ObjectMeta: metav1.ObjectMeta{Name: nodeName,
			Labels: map[string]string{"topology.kubernetes.io/zone": zoneA}},
		Status: v1.NodeStatus{Addresses: []v1.NodeAddress{
			{Type: v1.NodeInternalIP, Address: w.Addrs.NodeV4.String()},
			{Type: v1.NodeInternalIP, Address: w.Addrs.NodeV6.String()},
		}},
	}
}

type svcOpt func(*v1.Service)

// service is a ClusterIP Service with one port "p" on 80 (protocol TCP unless changed).
func service(name, clusterIP string, opts ...svcOpt) *v1.Service {
	s := &v1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: name},
		Spec: v1.ServiceSpec{
			Type: v1.ServiceTypeClusterIP, ClusterIP: clusterIP, ClusterIPs: []string{clusterIP},
			Ports: []v1.ServicePort{{Name: "p", Port: 80, Protocol: v1.ProtocolTCP}},
		},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func withProtocol(p v1.Protocol) svcOpt {
	return func(s *v1.Service) { s.Spec.Ports[0].Protocol = p }
}

func withNodePort(port int32) svcOpt {
	return func(s *v1.Service) {
		if s.Spec.Type == v1.ServiceTypeClusterIP {
			s.Spec.Type = v1.ServiceTypeNodePort
		}
		s.Spec.Ports[0].NodePort = port
	}
}

func withLoadBalancer(ip string, nodePort int32, sourceRanges ...string) svcOpt {
	return func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeLoadBalancer
		s.Spec.Ports[0].NodePort = nodePort
		s.Spec.LoadBalancerSourceRanges = sourceRanges
		s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: ip}}
	}
}

func withExternalIPs(ips ...string) svcOpt { return func(s *v1.Service) { s.Spec.ExternalIPs = ips } }

func withExternalLocal(healthCheckNodePort int32) svcOpt {
	return func(s *v1.Service) {
		s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
		s.Spec.HealthCheckNodePort = healthCheckNodePort
	}
}

func withInternalLocal() svcOpt {
	return func(s *v1.Service) { s.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal) }
}

func withAffinity(seconds int32) svcOpt {
	return func(s *v1.Service) {
		s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To(seconds)}}
	}
}

func withIPv6(clusterIP string) svcOpt {
	return func(s *v1.Service) {
		s.Spec.ClusterIP, s.Spec.ClusterIPs = clusterIP, []string{clusterIP}
		s.Spec.IPFamilies = []v1.IPFamily{v1.IPv6Protocol}
	}
}

type epOpt func(*discovery.Endpoint)

// endpoint is a ready endpoint for a pod of the world, on the node the pod lives on.
func endpoint(w *netns.World, pod netns.Pod, opts ...epOpt) discovery.Endpoint {
	node := nodeName
	if pod.Node == w.Node2 {
		node = node2Name
	}
	e := discovery.Endpoint{
		Addresses:  []string{pod.IPv4.String()},
		Conditions: discovery.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
		NodeName:   ptr.To(node),
		TargetRef:  &v1.ObjectReference{Kind: "Pod", Namespace: testNS, Name: pod.Name},
	}
	for _, o := range opts {
		o(&e)
	}
	return e
}

func v6(pod netns.Pod) epOpt {
	return func(e *discovery.Endpoint) { e.Addresses = []string{pod.IPv6.String()} }
}

func terminatingServing() epOpt {
	return func(e *discovery.Endpoint) {
		e.Conditions = discovery.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(true), Terminating: ptr.To(true)}
	}
}

func hintZones(zones ...string) epOpt {
	return func(e *discovery.Endpoint) {
		e.Hints = &discovery.EndpointHints{}
		for _, z := range zones {
			e.Hints.ForZones = append(e.Hints.ForZones, discovery.ForZone{Name: z})
		}
	}
}

// slice is an EndpointSlice of svc with port "p" → podPort.
func slice(svc *v1.Service, suffix string, eps ...discovery.Endpoint) *discovery.EndpointSlice {
	addrType := discovery.AddressTypeIPv4
	if len(svc.Spec.IPFamilies) == 1 && svc.Spec.IPFamilies[0] == v1.IPv6Protocol {
		addrType = discovery.AddressTypeIPv6
	}
	return &discovery.EndpointSlice{
		TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
		ObjectMeta: metav1.ObjectMeta{Namespace: svc.Namespace, Name: fmt.Sprintf("%s-%s", svc.Name, suffix),
			Labels: map[string]string{discovery.LabelServiceName: svc.Name}},
		AddressType: addrType,
		Endpoints:   eps,
		Ports: []discovery.EndpointPort{{Name: ptr.To("p"), Port: ptr.To(int32(podPort)),
			Protocol: ptr.To(svc.Spec.Ports[0].Protocol)}},
	}
}
