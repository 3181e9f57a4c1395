package proxier

import (
	"net/netip"
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
