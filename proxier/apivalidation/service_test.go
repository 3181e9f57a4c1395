package apivalidation

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// lbService is a valid dual-stack LoadBalancer Service using every field
// kproxy reads.
func lbService(mods ...func(*v1.Service)) *v1.Service {
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: "svc1"},
		Spec: v1.ServiceSpec{
			Type: v1.ServiceTypeLoadBalancer, ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10", "fd00::10"},
			IPFamilies: []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol},
			Ports: []v1.ServicePort{
				{Name: "http", Port: 80, Protocol: v1.ProtocolTCP, NodePort: 30080},
				{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP, NodePort: 30053},
			},
			ExternalIPs:              []string{"192.168.99.1", "fd00:99::1"},
			LoadBalancerSourceRanges: []string{"203.0.113.0/24", "garbage"},
			ExternalTrafficPolicy:    v1.ServiceExternalTrafficPolicyLocal,
			HealthCheckNodePort:      30999,
			InternalTrafficPolicy:    ptr.To(v1.ServiceInternalTrafficPolicyCluster),
			SessionAffinity:          v1.ServiceAffinityClientIP,
			SessionAffinityConfig:    &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To(int32(600))}},
		},
		Status: v1.ServiceStatus{LoadBalancer: v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{
			{IP: "1.2.3.4", IPMode: ptr.To(v1.LoadBalancerIPModeVIP)}, {Hostname: "lb.example.com"},
		}}},
	}
	for _, m := range mods {
		m(s)
	}
	return s
}

func TestValidateService(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*v1.Service)
		want string // substring of the errors; "" means valid
	}{
		{"every field valid", func(*v1.Service) {}, ""},
		{"name may start with a digit (v1.37)", func(s *v1.Service) { s.Name = "1svc" }, ""},
		{"defaults left unset", func(s *v1.Service) {
			s.Spec.Type, s.Spec.SessionAffinity, s.Spec.SessionAffinityConfig = "", "", nil
			s.Spec.ExternalTrafficPolicy, s.Spec.HealthCheckNodePort, s.Spec.InternalTrafficPolicy = "", 0, nil
			s.Spec.Ports = s.Spec.Ports[:1]
			s.Spec.Ports[0].Protocol, s.Spec.Ports[0].NodePort = "", 0
			s.Status = v1.ServiceStatus{}
		}, ""},
		{"legacy IPs", func(s *v1.Service) {
			s.Spec.ClusterIP, s.Spec.ClusterIPs = "010.096.000.010", []string{"010.096.000.010"}
			s.Spec.IPFamilies = s.Spec.IPFamilies[:1]
			s.Spec.ExternalIPs = []string{"::ffff:192.168.99.1"}
		}, ""},
		{"clusterIPs unset on an old object", func(s *v1.Service) { s.Spec.ClusterIPs, s.Spec.IPFamilies = nil, nil }, ""},
		{"source ranges are not checked", func(s *v1.Service) { s.Spec.LoadBalancerSourceRanges = []string{"\"; -j ACCEPT"} }, ""},
		{"LB Local without health check port", func(s *v1.Service) { s.Spec.HealthCheckNodePort = 0 }, ""},
		{"headless", func(s *v1.Service) {
			s.Spec.Type, s.Spec.ClusterIP, s.Spec.ClusterIPs, s.Spec.Ports = v1.ServiceTypeClusterIP, "None", []string{"None"}, nil
			s.Spec.ExternalIPs, s.Spec.ExternalTrafficPolicy, s.Spec.HealthCheckNodePort, s.Status = nil, "", 0, v1.ServiceStatus{}
		}, ""},
		{"ExternalName: only metadata", func(s *v1.Service) {
			s.Spec = v1.ServiceSpec{Type: v1.ServiceTypeExternalName, Ports: []v1.ServicePort{{Port: -1}}}
		}, ""},

		{"name with a quote", func(s *v1.Service) { s.Name = `a"b` }, "metadata.name: Invalid value"},
		{"name with a newline", func(s *v1.Service) { s.Name = "a\nb" }, "metadata.name: Invalid value"},
		{"name with a blank", func(s *v1.Service) { s.Name = "a b" }, "metadata.name"},
		{"name too long", func(s *v1.Service) { s.Name = strings.Repeat("a", 64) }, "metadata.name"},
		{"name missing", func(s *v1.Service) { s.Name = "" }, "metadata.name: Required"},
		{"namespace with a dot", func(s *v1.Service) { s.Namespace = "a.b" }, "metadata.namespace"},
		{"namespace missing", func(s *v1.Service) { s.Namespace = "" }, "metadata.namespace: Required"},
		{"unknown type", func(s *v1.Service) { s.Spec.Type = "Magic" }, "spec.type: Unsupported value"},
		{"no ports", func(s *v1.Service) { s.Spec.Ports = nil }, "spec.ports: Required"},
		{"port name with a quote", func(s *v1.Service) { s.Spec.Ports[0].Name = `p"` }, "spec.ports[0].name: Invalid value"},
		{"port name required with two ports", func(s *v1.Service) { s.Spec.Ports[1].Name = "" }, "spec.ports[1].name: Required"},
		{"port name duplicate", func(s *v1.Service) { s.Spec.Ports[1].Name = "http" }, "spec.ports[1].name: Duplicate"},
		{"port 0", func(s *v1.Service) { s.Spec.Ports[0].Port = 0 }, "spec.ports[0].port: Invalid value: 0"},
		{"port 65536", func(s *v1.Service) { s.Spec.Ports[0].Port = 65536 }, "spec.ports[0].port"},
		{"protocol ICMP", func(s *v1.Service) { s.Spec.Ports[0].Protocol = "ICMP" }, "spec.ports[0].protocol: Unsupported value"},
		{"nodePort 70000", func(s *v1.Service) { s.Spec.Ports[0].NodePort = 70000 }, "spec.ports[0].nodePort: Invalid value"},
		{"nodePort negative", func(s *v1.Service) { s.Spec.Ports[0].NodePort = -1 }, "spec.ports[0].nodePort"},
		{"nodePort on a ClusterIP Service", func(s *v1.Service) {
			s.Spec.Type, s.Spec.ExternalTrafficPolicy, s.Spec.HealthCheckNodePort, s.Status = v1.ServiceTypeClusterIP, "", 0, v1.ServiceStatus{}
			s.Spec.ExternalIPs = nil
		}, "spec.ports[0].nodePort: Forbidden"},
		{"duplicate port and protocol", func(s *v1.Service) { s.Spec.Ports[1].Port, s.Spec.Ports[1].Protocol = 80, "" }, "spec.ports[1]: Duplicate"},
		{"duplicate nodePort", func(s *v1.Service) { s.Spec.Ports[1].NodePort, s.Spec.Ports[1].Protocol = 30080, "TCP" }, "spec.ports[1].nodePort: Duplicate"},
		{"healthCheckNodePort 70000", func(s *v1.Service) { s.Spec.HealthCheckNodePort = 70000 }, "spec.healthCheckNodePort: Invalid value: 70000"},
		{"healthCheckNodePort negative", func(s *v1.Service) { s.Spec.HealthCheckNodePort = -5 }, "spec.healthCheckNodePort"},
		{"healthCheckNodePort with policy Cluster", func(s *v1.Service) {
			s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyCluster
		}, "spec.healthCheckNodePort: Invalid value: 30999: may only be set"},
		{"unknown traffic policies", func(s *v1.Service) {
			s.Spec.ExternalTrafficPolicy, s.Spec.HealthCheckNodePort = "Nearby", 0
			s.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicy("Nearby"))
		}, "spec.internalTrafficPolicy: Unsupported value"},
		{"externalTrafficPolicy on an internal Service", func(s *v1.Service) {
			s.Spec.Type, s.Spec.HealthCheckNodePort, s.Status, s.Spec.ExternalIPs = v1.ServiceTypeClusterIP, 0, v1.ServiceStatus{}, nil
			s.Spec.Ports[0].NodePort, s.Spec.Ports[1].NodePort = 0, 0
		}, "spec.externalTrafficPolicy: Invalid value"},
		{"affinity timeout 0", func(s *v1.Service) { s.Spec.SessionAffinityConfig.ClientIP.TimeoutSeconds = ptr.To(int32(0)) }, "timeoutSeconds: Invalid value: 0"},
		{"affinity timeout too long", func(s *v1.Service) { s.Spec.SessionAffinityConfig.ClientIP.TimeoutSeconds = ptr.To(int32(86401)) }, "timeoutSeconds"},
		{"unknown affinity", func(s *v1.Service) { s.Spec.SessionAffinity = "Cookie" }, "spec.sessionAffinity: Unsupported value"},
		{"clusterIP with a zone", func(s *v1.Service) {
			s.Spec.ClusterIP, s.Spec.ClusterIPs, s.Spec.IPFamilies = "fe80::1%eth0", []string{"fe80::1%eth0"}, nil
		}, "spec.clusterIPs[0]: Invalid value"},
		{"second clusterIP invalid", func(s *v1.Service) { s.Spec.ClusterIPs[1] = "fd00::zz" }, "spec.clusterIPs[1]"},
		{"clusterIPs[0] differs from clusterIP", func(s *v1.Service) { s.Spec.ClusterIPs[0] = "10.96.0.11" }, "first value must match"},
		{"two IPv4 clusterIPs", func(s *v1.Service) { s.Spec.ClusterIPs[1], s.Spec.IPFamilies = "10.96.0.11", nil }, "no more than one IP for each IP family"},
		{"three clusterIPs", func(s *v1.Service) { s.Spec.ClusterIPs = append(s.Spec.ClusterIPs, "10.96.0.12") }, "may only hold up to 2 values"},
		{"family mismatch", func(s *v1.Service) { s.Spec.IPFamilies = []v1.IPFamily{v1.IPv6Protocol, v1.IPv4Protocol} }, "expected an IPv6 value"},
		{"headless NodePort", func(s *v1.Service) { s.Spec.ClusterIP, s.Spec.ClusterIPs = "None", []string{"None"} }, "may not be set to 'None'"},
		{"externalIP with a zone", func(s *v1.Service) { s.Spec.ExternalIPs = []string{"fd00::1%eth0"} }, "spec.externalIPs[0]: Invalid value"},
		{"externalIP loopback", func(s *v1.Service) { s.Spec.ExternalIPs = []string{"127.0.0.1"} }, "loopback"},
		{"externalIP unspecified", func(s *v1.Service) { s.Spec.ExternalIPs = []string{"::"} }, "unspecified"},
		{"externalIP link-local", func(s *v1.Service) { s.Spec.ExternalIPs = []string{"169.254.169.254"} }, "link-local range"},
		{"externalIP link-local multicast", func(s *v1.Service) { s.Spec.ExternalIPs = []string{"ff02::1"} }, "link-local multicast"},
		{"externalIP mapped loopback", func(s *v1.Service) { s.Spec.ExternalIPs = []string{"::ffff:127.0.0.1"} }, "loopback"},
		{"ingress IP with a zone", func(s *v1.Service) { s.Status.LoadBalancer.Ingress[0].IP = "fe80::1%eth0" }, "status.loadBalancer.ingress[0].ip"},
		{"ingress ipMode unknown", func(s *v1.Service) {
			s.Status.LoadBalancer.Ingress[0].IPMode = ptr.To(v1.LoadBalancerIPMode("Magic"))
		}, "status.loadBalancer.ingress[0].ipMode: Unsupported value"},
		{"ingress ipMode without IP", func(s *v1.Service) {
			s.Status.LoadBalancer.Ingress[1].IPMode = ptr.To(v1.LoadBalancerIPModeVIP)
		}, "status.loadBalancer.ingress[1].ipMode: Forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := ValidateService(lbService(tt.mod))
			if tt.want == "" {
				if len(errs) != 0 {
					t.Fatalf("valid Service refused: %v", errs)
				}
				return
			}
			if len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), tt.want) {
				t.Fatalf("errors %v, want one containing %q", errs, tt.want)
			}
		})
	}
}
