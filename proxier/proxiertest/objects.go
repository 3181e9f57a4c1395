package proxiertest

import (
	"net/netip"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// ServiceOption changes a Service made by Service.
type ServiceOption func(*v1.Service)

// Service returns a ClusterIP Service with, unless Port options say
// otherwise, one TCP port named "p80" on port 80. Options apply in order;
// those about "the port" (NodePort, HealthCheckNodePort) change the last
// port added.
func Service(ns, name string, opts ...ServiceOption) *v1.Service {
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1.ServiceSpec{Type: v1.ServiceTypeClusterIP},
	}
	for _, o := range opts {
		o(s)
	}
	if len(s.Spec.Ports) == 0 {
		Port("p80", v1.ProtocolTCP, 80)(s)
	}
	return s
}

// ClusterIP sets the cluster IPs (two for dual stack) and the IP families they imply.
func ClusterIP(ips ...string) ServiceOption {
	return func(s *v1.Service) {
		s.Spec.ClusterIP, s.Spec.ClusterIPs, s.Spec.IPFamilies = ips[0], ips, nil
		for _, ip := range ips {
			s.Spec.IPFamilies = append(s.Spec.IPFamilies, familyOf(ip))
		}
	}
}

// Port adds a port whose target port is the same number.
func Port(name string, proto v1.Protocol, port int32) ServiceOption {
	return PortTo(name, proto, port, port)
}

// PortTo adds a port with a numeric target port.
func PortTo(name string, proto v1.Protocol, port, target int32) ServiceOption {
	return func(s *v1.Service) {
		s.Spec.Ports = append(s.Spec.Ports, v1.ServicePort{Name: name, Protocol: proto, Port: port,
			TargetPort: intstr.FromInt32(target)})
	}
}

// NodePort makes the Service a NodePort one (unless it is a LoadBalancer)
// and gives the last port node port n.
func NodePort(n int32) ServiceOption {
	return func(s *v1.Service) {
		if s.Spec.Type != v1.ServiceTypeLoadBalancer {
			s.Spec.Type = v1.ServiceTypeNodePort
		}
		lastPort(s).NodePort = n
	}
}

// LoadBalancer makes the Service a LoadBalancer with these ingress IPs.
func LoadBalancer(ips ...string) ServiceOption {
	return func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeLoadBalancer
		for _, ip := range ips {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, v1.LoadBalancerIngress{IP: ip})
		}
	}
}

// SourceRanges sets loadBalancerSourceRanges.
func SourceRanges(cidrs ...string) ServiceOption {
	return func(s *v1.Service) { s.Spec.LoadBalancerSourceRanges = cidrs }
}

// ExternalIPs sets the external IPs.
func ExternalIPs(ips ...string) ServiceOption {
	return func(s *v1.Service) { s.Spec.ExternalIPs = ips }
}

// ExternalLocal sets externalTrafficPolicy: Local.
func ExternalLocal() ServiceOption {
	return func(s *v1.Service) { s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal }
}

// InternalLocal sets internalTrafficPolicy: Local.
func InternalLocal() ServiceOption {
	return func(s *v1.Service) { s.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal) }
}

// HealthCheckNodePort sets healthCheckNodePort (eTP Local LoadBalancers).
func HealthCheckNodePort(n int32) ServiceOption {
	return func(s *v1.Service) { s.Spec.HealthCheckNodePort = n }
}

// Affinity sets ClientIP session affinity with this timeout.
func Affinity(seconds int32) ServiceOption {
	return func(s *v1.Service) {
		s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To(seconds)}}
	}
}

// TrafficDistribution sets spec.trafficDistribution (e.g. "PreferClose").
func TrafficDistribution(d string) ServiceOption {
	return func(s *v1.Service) { s.Spec.TrafficDistribution = ptr.To(d) }
}

// Annotation sets one annotation.
func Annotation(key, value string) ServiceOption {
	return func(s *v1.Service) { metav1.SetMetaDataAnnotation(&s.ObjectMeta, key, value) }
}

func lastPort(s *v1.Service) *v1.ServicePort {
	if len(s.Spec.Ports) == 0 {
		Port("p80", v1.ProtocolTCP, 80)(s)
	}
	return &s.Spec.Ports[len(s.Spec.Ports)-1]
}

// EndpointOption changes an endpoint made by Endpoint.
type EndpointOption func(*discovery.Endpoint)

// Endpoint returns a ready, serving endpoint with one address.
func Endpoint(ip string, opts ...EndpointOption) discovery.Endpoint {
	e := discovery.Endpoint{Addresses: []string{ip},
		Conditions: discovery.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)}}
	for _, o := range opts {
		o(&e)
	}
	return e
}

// OnNode sets the endpoint's nodeName.
func OnNode(name string) EndpointOption {
	return func(e *discovery.Endpoint) { e.NodeName = ptr.To(name) }
}

// InZone sets the endpoint's zone.
func InZone(zone string) EndpointOption {
	return func(e *discovery.Endpoint) { e.Zone = ptr.To(zone) }
}

// Terminating marks the endpoint terminating, still serving or not.
func Terminating(serving bool) EndpointOption {
	return func(e *discovery.Endpoint) {
		e.Conditions = discovery.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(serving), Terminating: ptr.To(true)}
	}
}

// NotReady marks the endpoint neither ready nor serving.
func NotReady() EndpointOption {
	return func(e *discovery.Endpoint) {
		e.Conditions = discovery.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(false), Terminating: ptr.To(false)}
	}
}

// ZoneHints sets topology hints for these zones.
func ZoneHints(zones ...string) EndpointOption {
	return func(e *discovery.Endpoint) {
		e.Hints = &discovery.EndpointHints{}
		for _, z := range zones {
			e.Hints.ForZones = append(e.Hints.ForZones, discovery.ForZone{Name: z})
		}
	}
}

// SliceFor returns the EndpointSlice of svc (named after it, "-1") holding
// eps, with one slice port per service port named and numbered as its
// target port. The address type is the first endpoint's family (IPv4 when
// there is none).
func SliceFor(svc *v1.Service, eps ...discovery.Endpoint) *discovery.EndpointSlice {
	ports := make([]discovery.EndpointPort, len(svc.Spec.Ports))
	for i, p := range svc.Spec.Ports {
		target := p.TargetPort.IntVal
		if target == 0 {
			target = p.Port
		}
		ports[i] = discovery.EndpointPort{Name: ptr.To(p.Name), Protocol: ptr.To(p.Protocol), Port: ptr.To(target)}
	}
	return Slice(svc.Namespace, svc.Name, svc.Name+"-1", ports, eps...)
}

// Slice returns an EndpointSlice of Service svcName with these ports and endpoints.
func Slice(ns, svcName, name string, ports []discovery.EndpointPort, eps ...discovery.Endpoint) *discovery.EndpointSlice {
	at := discovery.AddressTypeIPv4
	if len(eps) > 0 && len(eps[0].Addresses) > 0 && familyOf(eps[0].Addresses[0]) == v1.IPv6Protocol {
		at = discovery.AddressTypeIPv6
	}
	return &discovery.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			Labels: map[string]string{discovery.LabelServiceName: svcName}},
		AddressType: at,
		Endpoints:   eps,
		Ports:       ports,
	}
}

// Node returns a Node with these InternalIP addresses and labels.
func Node(name string, labels map[string]string, ips ...string) *v1.Node {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	for _, ip := range ips {
		n.Status.Addresses = append(n.Status.Addresses, v1.NodeAddress{Type: v1.NodeInternalIP, Address: ip})
	}
	return n
}

func familyOf(ip string) v1.IPFamily {
	if a, err := netip.ParseAddr(ip); err == nil && a.Is6() && !a.Is4In6() {
		return v1.IPv6Protocol
	}
	return v1.IPv4Protocol
}
