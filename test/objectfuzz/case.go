package objectfuzz

import (
	"strings"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Case is one Service and one EndpointSlice, described by the fuzz
// arguments (in the fuzz functions' order). Lists are comma-separated.
type Case struct {
	NS, Name, PortName  string
	SvcType             uint8
	Protocol            string
	Port, NodePort, HC  int32
	ClusterIPs          string
	ExternalIP, LBIP    string
	SourceRanges        string
	Flags               uint8 // 1 ETP Local, 2 ITP Local, 4 ipMode Proxy, 8 not ready, 16 terminating, 32 local
	Affinity            int32
	SliceName, SvcLabel string
	AddressType         string
	EPAddrs, EPPortName string
	EPPort              int32
	NodeName            string
}

// NodeName is the node the trackers run for; endpoints with flag 32 are on it.
const NodeName = "kpx-node"

// Families are the trackers' families, in Snapshots' order.
var Families = []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol}

// Seeds are a valid baseline and edge cases; the corpus holds more.
func Seeds() []Case {
	base := Case{NS: "ns1", Name: "svc1", PortName: "http", SvcType: 2, Protocol: "TCP", Port: 80, NodePort: 30080,
		HC: 30999, ClusterIPs: "10.96.0.10,fd00::10", ExternalIP: "192.168.99.1", LBIP: "1.2.3.4",
		SourceRanges: "203.0.113.0/24", Flags: 1, SliceName: "svc1-abc", SvcLabel: "svc1", AddressType: "IPv4",
		EPAddrs: "10.180.0.1,10.180.0.2", EPPortName: "http", EPPort: 8080, NodeName: "node-a"}
	with := func(mod func(*Case)) Case { c := base; mod(&c); return c }
	return []Case{
		base,
		with(func(c *Case) { c.Name = "q\"uote\n-A INPUT -j ACCEPT" }),
		with(func(c *Case) { c.ClusterIPs = "fe80::1%eth0" }),
		with(func(c *Case) { c.HC = 70000 }),
		with(func(c *Case) { c.SourceRanges = "not-a-cidr" }),
		with(func(c *Case) { c.SourceRanges = " 010.000.000.000/8 ,fd00::/64" }),
		with(func(c *Case) { c.AddressType, c.EPAddrs = "IPv6", "fd00::1%eth0,fd00::2" }),
		with(func(c *Case) { c.Affinity = -5 }),
		with(func(c *Case) { c.SvcType, c.NodePort, c.Flags, c.HC = 0, 0, 0, 0 }),
	}
}

// Objects builds the Service and the EndpointSlice.
func (c *Case) Objects() (*v1.Service, *discovery.EndpointSlice) {
	return c.service(), c.slice()
}

func (c *Case) service() *v1.Service {
	types := []v1.ServiceType{v1.ServiceTypeClusterIP, v1.ServiceTypeNodePort, v1.ServiceTypeLoadBalancer, v1.ServiceTypeExternalName, ""}
	svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: c.NS, Name: c.Name},
		Spec: v1.ServiceSpec{Type: types[int(c.SvcType)%len(types)], HealthCheckNodePort: c.HC,
			Ports: []v1.ServicePort{{Name: c.PortName, Protocol: v1.Protocol(c.Protocol), Port: c.Port, NodePort: c.NodePort}}}}
	if c.ClusterIPs != "" {
		svc.Spec.ClusterIPs = strings.Split(c.ClusterIPs, ",")
		svc.Spec.ClusterIP = svc.Spec.ClusterIPs[0]
	}
	if c.ExternalIP != "" {
		svc.Spec.ExternalIPs = []string{c.ExternalIP}
	}
	if c.SourceRanges != "" {
		svc.Spec.LoadBalancerSourceRanges = strings.Split(c.SourceRanges, ",")
	}
	if c.Flags&1 != 0 {
		svc.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	}
	if c.Flags&2 != 0 {
		svc.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
	}
	if c.LBIP != "" {
		ing := v1.LoadBalancerIngress{IP: c.LBIP}
		if c.Flags&4 != 0 {
			ing.IPMode = ptr.To(v1.LoadBalancerIPModeProxy)
		}
		svc.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{ing}
	}
	if c.Affinity != 0 {
		svc.Spec.SessionAffinity = v1.ServiceAffinityClientIP
		svc.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To(c.Affinity)}}
	}
	return svc
}

func (c *Case) slice() *discovery.EndpointSlice {
	slice := &discovery.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: c.NS, Name: c.SliceName,
		Labels: map[string]string{discovery.LabelServiceName: c.SvcLabel}},
		AddressType: discovery.AddressType(c.AddressType),
		Ports:       []discovery.EndpointPort{{Name: ptr.To(c.EPPortName), Port: ptr.To(c.EPPort), Protocol: ptr.To(v1.Protocol(c.Protocol))}}}
	node := "other-node"
	if c.Flags&32 != 0 {
		node = NodeName
	}
	for _, a := range strings.Split(c.EPAddrs, ",") {
		slice.Endpoints = append(slice.Endpoints, discovery.Endpoint{Addresses: []string{a}, NodeName: ptr.To(node),
			Conditions: discovery.EndpointConditions{Ready: ptr.To(c.Flags&8 == 0), Serving: ptr.To(true), Terminating: ptr.To(c.Flags&16 != 0)}})
	}
	if c.NodeName != "" {
		slice.Endpoints[0].NodeName = ptr.To(c.NodeName)
	}
	return slice
}
