package informers

import (
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestDemoManifests keeps deploy/examples/demo loadable and as the demo
// expects it.
func TestDemoManifests(t *testing.T) {
	all, err := LoadManifests("../deploy/examples/demo")
	if err != nil {
		t.Fatalf("LoadManifests: %v", err)
	}
	if len(all.Ignored) != 0 {
		t.Errorf("ignored objects: %+v", all.Ignored)
	}
	objs := all.Select("kpx-node")
	if got, want := names(objs), []string{
		"Service demo/dns", "Service demo/web", "EndpointSlice demo/dns-demo1", "EndpointSlice demo/web-demo1", "Node kpx-node",
	}; !slices.Equal(got, want) {
		t.Fatalf("objects = %q, want %q", got, want)
	}

	n := objs.Nodes[0]
	if n.Labels[v1.LabelTopologyZone] != "zone-a" || !hasAddress(n, v1.NodeInternalIP, "192.168.50.1") {
		t.Errorf("node kpx-node: labels %v, addresses %v", n.Labels, n.Status.Addresses)
	}

	dns, web := objs.Services[0], objs.Services[1]
	checkService(t, web, "10.96.0.10", v1.ServiceTypeNodePort, v1.ServicePort{
		Name: "http", Protocol: v1.ProtocolTCP, Port: 80, TargetPort: intOrStr(8080), NodePort: 30080,
	})
	checkService(t, dns, "10.96.0.53", v1.ServiceTypeClusterIP, v1.ServicePort{
		Name: "dns", Protocol: v1.ProtocolUDP, Port: 53, TargetPort: intOrStr(5353),
	})

	dnsSlice, webSlice := objs.EndpointSlices[0], objs.EndpointSlices[1]
	checkSlice(t, webSlice, "web", "http", v1.ProtocolTCP, 8080)
	checkSlice(t, dnsSlice, "dns", "dns", v1.ProtocolUDP, 5353)
}

func checkService(t *testing.T, svc *v1.Service, clusterIP string, typ v1.ServiceType, port v1.ServicePort) {
	t.Helper()
	if svc.Spec.ClusterIP != clusterIP || svc.Spec.Type != typ || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0] != port {
		t.Errorf("service %s/%s: clusterIP %s type %s ports %+v; want %s %s [%+v]", svc.Namespace, svc.Name,
			svc.Spec.ClusterIP, svc.Spec.Type, svc.Spec.Ports, clusterIP, typ, port)
	}
}

func checkSlice(t *testing.T, s *discovery.EndpointSlice, service, portName string, proto v1.Protocol, port int32) {
	t.Helper()
	if s.Labels[discovery.LabelServiceName] != service || s.AddressType != discovery.AddressTypeIPv4 {
		t.Errorf("slice %s: labels %v, addressType %s", s.Name, s.Labels, s.AddressType)
	}
	if len(s.Ports) != 1 || *s.Ports[0].Name != portName || *s.Ports[0].Protocol != proto || *s.Ports[0].Port != port {
		t.Errorf("slice %s: ports %+v, want %s/%s %d", s.Name, s.Ports, portName, proto, port)
	}
	var ips []string
	for _, ep := range s.Endpoints {
		ready := ep.Conditions.Ready != nil && *ep.Conditions.Ready
		if !ready || ep.NodeName == nil || *ep.NodeName != "kpx-node" || len(ep.Addresses) != 1 {
			t.Errorf("slice %s: endpoint %+v is not a ready single-address endpoint on kpx-node", s.Name, ep)
			continue
		}
		ips = append(ips, ep.Addresses[0])
	}
	if want := []string{"10.244.1.11", "10.244.1.12", "10.244.1.13"}; !slices.Equal(ips, want) {
		t.Errorf("slice %s: endpoint IPs %v, want %v", s.Name, ips, want)
	}
}

func hasAddress(n *v1.Node, typ v1.NodeAddressType, addr string) bool {
	return slices.Contains(n.Status.Addresses, v1.NodeAddress{Type: typ, Address: addr})
}

func intOrStr(port int) intstr.IntOrString { return intstr.FromInt(port) }
