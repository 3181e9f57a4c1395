package apivalidation

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// goodSlice is a valid IPv4 EndpointSlice using every field kproxy reads.
func goodSlice(mods ...func(*discovery.EndpointSlice)) *discovery.EndpointSlice {
	s := &discovery.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: "svc1-abc.12",
			Labels: map[string]string{discovery.LabelServiceName: "svc1"}},
		AddressType: discovery.AddressTypeIPv4,
		Ports: []discovery.EndpointPort{
			{Name: ptr.To("http"), Port: ptr.To(int32(8080)), Protocol: ptr.To(v1.ProtocolTCP)},
			{Name: ptr.To("dns"), Port: ptr.To(int32(53)), Protocol: ptr.To(v1.ProtocolUDP)},
		},
		Endpoints: []discovery.Endpoint{{
			Addresses:  []string{"10.180.0.1"},
			Conditions: discovery.EndpointConditions{Ready: ptr.To(true)},
			NodeName:   ptr.To("node-a.example"),
			Zone:       ptr.To("zone-a"),
			Hints: &discovery.EndpointHints{ForZones: []discovery.ForZone{{Name: "zone-a"}},
				ForNodes: []discovery.ForNode{{Name: "node-a.example"}}},
		}},
	}
	for _, m := range mods {
		m(s)
	}
	return s
}

func TestValidateEndpointSlice(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*discovery.EndpointSlice)
		want string // substring of the errors; "" means valid
	}{
		{"every field valid", func(*discovery.EndpointSlice) {}, ""},
		{"defaults left unset", func(s *discovery.EndpointSlice) {
			s.Ports = []discovery.EndpointPort{{Port: ptr.To(int32(80))}}
		}, ""},
		{"port numbers are not checked (the API server does not)", func(s *discovery.EndpointSlice) {
			s.Ports[0].Port, s.Ports[1].Port = ptr.To(int32(0)), nil
		}, ""},
		{"legacy IPv4", func(s *discovery.EndpointSlice) { s.Endpoints[0].Addresses = []string{"010.180.000.001"} }, ""},
		{"FQDN addresses are not read", func(s *discovery.EndpointSlice) {
			s.AddressType, s.Endpoints[0].Addresses = discovery.AddressTypeFQDN, []string{"not an ip"}
		}, ""},
		{"no service-name label", func(s *discovery.EndpointSlice) { s.Labels = nil }, ""},

		{"name with a quote", func(s *discovery.EndpointSlice) { s.Name = `a"b` }, "metadata.name: Invalid value"},
		{"namespace with a newline", func(s *discovery.EndpointSlice) { s.Namespace = "a\nb" }, "metadata.namespace: Invalid value"},
		{"service-name label with a blank", func(s *discovery.EndpointSlice) {
			s.Labels[discovery.LabelServiceName] = "svc 1"
		}, "metadata.labels[kubernetes.io/service-name]: Invalid value"},
		{"address type missing", func(s *discovery.EndpointSlice) { s.AddressType = "" }, "addressType: Required"},
		{"address type unknown", func(s *discovery.EndpointSlice) { s.AddressType = "IP" }, "addressType: Unsupported value"},
		{"no address", func(s *discovery.EndpointSlice) { s.Endpoints[0].Addresses = nil }, "endpoints[0].addresses: Required"},
		{"address with a zone", func(s *discovery.EndpointSlice) {
			s.AddressType, s.Endpoints[0].Addresses = discovery.AddressTypeIPv6, []string{"fe80::1%eth0"}
		}, "endpoints[0].addresses[0]: Invalid value"},
		{"IPv6 address in an IPv4 slice", func(s *discovery.EndpointSlice) {
			s.Endpoints[0].Addresses = []string{"10.180.0.1", "fd00::1"}
		}, "endpoints[0].addresses[1]: Invalid value: \"fd00::1\": must be an IPv4 address"},
		{"IPv4 address in an IPv6 slice", func(s *discovery.EndpointSlice) { s.AddressType = discovery.AddressTypeIPv6 }, "must be an IPv6 address"},
		{"loopback endpoint", func(s *discovery.EndpointSlice) { s.Endpoints[0].Addresses = []string{"127.0.0.1"} }, "loopback"},
		{"link-local endpoint", func(s *discovery.EndpointSlice) { s.Endpoints[0].Addresses = []string{"169.254.169.254"} }, "link-local"},
		{"link-local multicast endpoint", func(s *discovery.EndpointSlice) { s.Endpoints[0].Addresses = []string{"224.0.0.251"} }, "multicast"},
		{"unspecified endpoint", func(s *discovery.EndpointSlice) { s.Endpoints[0].Addresses = []string{"0.0.0.0"} }, "unspecified"},
		{"nodeName with a slash", func(s *discovery.EndpointSlice) { s.Endpoints[0].NodeName = ptr.To("node/a") }, "endpoints[0].nodeName"},
		{"zone hint invalid", func(s *discovery.EndpointSlice) { s.Endpoints[0].Hints.ForZones[0].Name = "zone a" }, "hints.forZones[0].name"},
		{"node hint duplicate", func(s *discovery.EndpointSlice) {
			s.Endpoints[0].Hints.ForNodes = append(s.Endpoints[0].Hints.ForNodes, s.Endpoints[0].Hints.ForNodes[0])
		}, "hints.forNodes[1].name: Duplicate"},
		{"too many endpoints", func(s *discovery.EndpointSlice) {
			for range maxEndpoints {
				s.Endpoints = append(s.Endpoints, s.Endpoints[0])
			}
		}, "endpoints: Too many"},
		{"port name with a quote", func(s *discovery.EndpointSlice) { s.Ports[0].Name = ptr.To(`p"`) }, "ports[0].name: Invalid value"},
		{"port name duplicate", func(s *discovery.EndpointSlice) { s.Ports[1].Name = ptr.To("http") }, "ports[1].name: Duplicate"},
		{"unnamed ports duplicate", func(s *discovery.EndpointSlice) { s.Ports[0].Name, s.Ports[1].Name = nil, ptr.To("") }, "ports[1].name: Duplicate"},
		{"port protocol ICMP", func(s *discovery.EndpointSlice) { s.Ports[0].Protocol = ptr.To(v1.Protocol("ICMP")) }, "ports[0].protocol: Unsupported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := ValidateEndpointSlice(goodSlice(tt.mod))
			if tt.want == "" {
				if len(errs) != 0 {
					t.Fatalf("valid EndpointSlice refused: %v", errs)
				}
				return
			}
			if len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), tt.want) {
				t.Fatalf("errors %v, want one containing %q", errs, tt.want)
			}
		})
	}
}

func TestNodeAddressErrors(t *testing.T) {
	node := &v1.Node{Status: v1.NodeStatus{Addresses: []v1.NodeAddress{
		{Type: v1.NodeHostName, Address: "not an ip"},
		{Type: v1.NodeInternalIP, Address: "192.168.0.2"},
		{Type: v1.NodeInternalIP, Address: "fe80::1%eth0"},
		{Type: v1.NodeExternalIP, Address: "garbage"},
	}}}
	got := NodeAddressErrors(node).ToAggregate().Error()
	if !strings.Contains(got, "status.addresses[2].address") || !strings.Contains(got, "status.addresses[3].address") ||
		strings.Contains(got, "addresses[0]") || strings.Contains(got, "addresses[1]") {
		t.Errorf("NodeAddressErrors = %s", got)
	}
}
