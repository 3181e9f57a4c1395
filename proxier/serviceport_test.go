package proxier

import (
	"unsafe"

	"net/netip"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func TestServicePortsFromService(t *testing.T) {
	tests := []struct {
		name      string
		svc       *v1.Service
		family    v1.IPFamily
		wantPorts int
		wantWarns int
		check     func(t *testing.T, p *ServicePort)
	}{
		{name: "clusterIP", svc: svc("ns1", "svc1", "172.30.0.41"), family: v1.IPv4Protocol, wantPorts: 1,
			check: func(t *testing.T, p *ServicePort) {
				if p.Name.String() != "ns1/svc1:p80" || p.ClusterIP != netip.MustParseAddr("172.30.0.41") || p.Port != 80 {
					t.Errorf("got %+v", p)
				}
			}},
		{name: "headless skipped", svc: svc("ns", "h", "None"), family: v1.IPv4Protocol},
		{name: "no clusterIP skipped", svc: svc("ns", "h", ""), family: v1.IPv4Protocol},
		{name: "external name skipped", svc: svc("ns", "e", "10.0.0.1", withType(v1.ServiceTypeExternalName)), family: v1.IPv4Protocol},
		{name: "other family yields nothing", svc: svc("ns", "s", "10.0.0.1"), family: v1.IPv6Protocol},
		{name: "dual stack picks family", svc: svc("ns", "s", "10.0.0.1", withClusterIPs("10.0.0.1", "fd00::1")),
			family: v1.IPv6Protocol, wantPorts: 1,
			check: func(t *testing.T, p *ServicePort) {
				if p.ClusterIP != netip.MustParseAddr("fd00::1") {
					t.Errorf("clusterIP %v", p.ClusterIP)
				}
			}},
		{name: "bad clusterIP rejected", svc: svc("ns", "s", "10.0.0.300"), family: v1.IPv4Protocol, wantWarns: 1},
		{name: "bad ports skipped, good kept", family: v1.IPv4Protocol, wantPorts: 1, wantWarns: 4,
			svc: svc("ns", "s", "10.0.0.1", withPorts(
				v1.ServicePort{Name: "zero", Port: 0, Protocol: v1.ProtocolTCP},
				v1.ServicePort{Name: "big", Port: 65536, Protocol: v1.ProtocolTCP},
				v1.ServicePort{Name: "proto", Port: 81, Protocol: "ICMP"},
				v1.ServicePort{Name: "ok", Port: 82, Protocol: v1.ProtocolUDP},
				v1.ServicePort{Name: "ok", Port: 83, Protocol: v1.ProtocolUDP},
			))},
		{name: "externalIPs filtered by family and validity", family: v1.IPv4Protocol, wantPorts: 1, wantWarns: 1,
			svc: svc("ns", "s", "10.0.0.1", withExternalIPs("192.168.99.22", "fd00::9", "nonsense")),
			check: func(t *testing.T, p *ServicePort) {
				if len(p.ExternalIPs) != 1 || p.ExternalIPs[0] != netip.MustParseAddr("192.168.99.22") {
					t.Errorf("externalIPs %v", p.ExternalIPs)
				}
			}},
		{name: "LB ETP local gets health check", family: v1.IPv4Protocol, wantPorts: 1,
			svc: func() *v1.Service {
				s := svc("ns", "s", "10.0.0.1", withLB("1.2.3.4"), withETPLocal())
				s.Spec.HealthCheckNodePort = 30000
				s.Spec.LoadBalancerSourceRanges = []string{" 203.0.113.0/25"}
				s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress,
					v1.LoadBalancerIngress{IP: "5.6.7.8", IPMode: ptr.To(v1.LoadBalancerIPModeProxy)})
				return s
			}(),
			check: func(t *testing.T, p *ServicePort) {
				if !p.ExternalPolicyLocal || p.HealthCheckNodePort != 30000 {
					t.Errorf("policy/hc: %+v", p)
				}
				if len(p.LoadBalancerVIPs) != 1 || p.LoadBalancerVIPs[0] != netip.MustParseAddr("1.2.3.4") {
					t.Errorf("VIPs %v (ipMode Proxy must be ignored)", p.LoadBalancerVIPs)
				}
				if len(p.LoadBalancerSourceRanges) != 1 || p.LoadBalancerSourceRanges[0].String() != "203.0.113.0/25" {
					t.Errorf("source ranges %v", p.LoadBalancerSourceRanges)
				}
			}},
		{name: "ETP local ignored on plain ClusterIP", family: v1.IPv4Protocol, wantPorts: 1,
			svc: svc("ns", "s", "10.0.0.1", withETPLocal()),
			check: func(t *testing.T, p *ServicePort) {
				if p.ExternalPolicyLocal {
					t.Error("ETP local must not apply to a ClusterIP service without external IPs")
				}
			}},
		{name: "affinity default timeout", family: v1.IPv4Protocol, wantPorts: 1,
			svc: func() *v1.Service {
				s := svc("ns", "s", "10.0.0.1")
				s.Spec.SessionAffinity = v1.ServiceAffinityClientIP
				return s
			}(),
			check: func(t *testing.T, p *ServicePort) {
				if p.AffinityTimeoutSeconds != 10800 {
					t.Errorf("timeout %d", p.AffinityTimeoutSeconds)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ports, warns := ServicePortsFromService(tt.svc, tt.family)
			if len(ports) != tt.wantPorts || len(warns) != tt.wantWarns {
				t.Fatalf("got %d ports %d warnings (%v), want %d, %d", len(ports), len(warns), warns, tt.wantPorts, tt.wantWarns)
			}
			if tt.check != nil {
				for _, p := range ports {
					tt.check(t, p)
				}
			}
		})
	}
}

func TestServicePortPredicates(t *testing.T) {
	p := &ServicePort{InternalPolicyLocal: true}
	if p.UsesClusterEndpoints() || !p.UsesLocalEndpoints() {
		t.Error("ITP local ClusterIP uses only local endpoints")
	}
	p.NodePort = 30000
	if !p.UsesClusterEndpoints() {
		t.Error("externally accessible ports always use cluster endpoints")
	}
	q := &ServicePort{ExternalPolicyLocal: true}
	if q.UsesLocalEndpoints() {
		t.Error("ETP local without external access does not use local endpoints")
	}
}

// TestSourceRangesParsing covers upstream's lenient parsing of
// loadBalancerSourceRanges and kproxy's fail-closed flag for what is left.
func TestSourceRangesParsing(t *testing.T) {
	tests := []struct {
		name        string
		ranges      []string
		family      v1.IPFamily
		want        []string
		wantInvalid bool
	}{
		{"blanks trimmed, host bits cleared", []string{" 203.0.113.7/24 ", "\t10.1.2.3/8"}, v1.IPv4Protocol,
			[]string{"203.0.113.0/24", "10.0.0.0/8"}, false},
		{"legacy leading zeros read as decimal", []string{"010.001.002.000/24"}, v1.IPv4Protocol, []string{"10.1.2.0/24"}, false},
		{"other family filtered, as upstream", []string{"fd00::/64"}, v1.IPv4Protocol, nil, false},
		{"unparseable entry flags the port", []string{"not-a-cidr", "203.0.113.0/24"}, v1.IPv4Protocol, []string{"203.0.113.0/24"}, true},
		{"only unparseable entries", []string{"10.0.0.0/33"}, v1.IPv4Protocol, nil, true},
		{"a zone is unparseable", []string{"fe80::/64%eth0"}, v1.IPv6Protocol, nil, true},
		{"an empty entry is unparseable", []string{""}, v1.IPv4Protocol, nil, true},
		{"unparseable flags the other family too", []string{"bogus", "fd00::/64"}, v1.IPv6Protocol, []string{"fd00::/64"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := svc("ns", "s", "10.0.0.1", withClusterIPs("10.0.0.1", "fd00::1"), withLB("1.2.3.4", "fd00:99::4"))
			s.Spec.LoadBalancerSourceRanges = tt.ranges
			ports, _ := ServicePortsFromService(s, tt.family)
			if len(ports) != 1 {
				t.Fatalf("%d ports", len(ports))
			}
			for _, p := range ports {
				var got []string
				for _, r := range p.LoadBalancerSourceRanges {
					got = append(got, r.String())
				}
				if !slices.Equal(got, tt.want) || p.LoadBalancerSourceRangesInvalid != tt.wantInvalid {
					t.Errorf("ranges %v invalid %v, want %v %v", got, p.LoadBalancerSourceRangesInvalid, tt.want, tt.wantInvalid)
				}
				if p.FirewallRequired() != (len(tt.want) > 0 || tt.wantInvalid) {
					t.Errorf("FirewallRequired() = %v", p.FirewallRequired())
				}
			}
		})
	}
}

// TestAddressesNeverCarryAZone checks every address the proxier parses
// (cluster IPs, external IPs, LB IPs, endpoints, node addresses): a zone is
// refused, legacy IPv4 is read as decimal, IPv4-mapped IPv6 is IPv4.
func TestAddressesNeverCarryAZone(t *testing.T) {
	zoned := svc("ns", "s", "fe80::1%eth0", withClusterIPs("fe80::1%eth0"))
	if ports, warns := ServicePortsFromService(zoned, v1.IPv6Protocol); len(ports) != 0 || len(warns) != 1 {
		t.Errorf("zoned clusterIP: %d ports, warnings %v", len(ports), warns)
	}
	s := svc("ns", "s", "010.000.000.001", withClusterIPs("010.000.000.001"),
		withExternalIPs("fd00::5%eth0", "::ffff:192.168.9.9"), withLB("fe80::7%1", "1.2.3.4"))
	ports, warns := ServicePortsFromService(s, v1.IPv4Protocol)
	if len(ports) != 1 || len(warns) != 2 {
		t.Fatalf("%d ports, warnings %v", len(ports), warns)
	}
	for _, p := range ports {
		if p.ClusterIP != netip.MustParseAddr("10.0.0.1") || !slices.Equal(p.ExternalIPs, []netip.Addr{netip.MustParseAddr("192.168.9.9")}) ||
			!slices.Equal(p.LoadBalancerVIPs, []netip.Addr{netip.MustParseAddr("1.2.3.4")}) {
			t.Errorf("got %+v", p)
		}
	}
	node := &v1.Node{Status: v1.NodeStatus{Addresses: []v1.NodeAddress{
		{Type: v1.NodeInternalIP, Address: "fe80::1%eth0"}, {Type: v1.NodeInternalIP, Address: "fd00::10"},
		{Type: v1.NodeExternalIP, Address: "192.168.000.002"},
	}}}
	if got := NodeAddresses(node, v1.IPv6Protocol); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("fd00::10")}) {
		t.Errorf("IPv6 node addresses %v", got)
	}
	if got := NodeAddresses(node, v1.IPv4Protocol); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("192.168.0.2")}) {
		t.Errorf("IPv4 node addresses %v", got)
	}
	sl := slice("ns", "s", "a", 80, ep("fd00::1%eth0"), ep("fd00::2"))
	sl.AddressType = "IPv6"
	eps, epWarns := endpointsFromSlice(sl, nn("ns", "s"), v1.IPv6Protocol, "node")
	for _, pe := range eps {
		list := pe.eps
		if len(list) != 1 || list[0].IP != netip.MustParseAddr("fd00::2") || len(epWarns) != 1 {
			t.Errorf("endpoints %v warnings %v", epStrings(list), epWarns)
		}
	}
}

// The tracker holds one Endpoint per endpoint of the cluster; a field
// that grows it costs 100 kB per byte at 100k endpoints.
func TestEndpointStaysSmall(t *testing.T) {
	if got := unsafe.Sizeof(Endpoint{}); got > 72 {
		t.Errorf("Endpoint is %d bytes, want at most 72", got)
	}
}
