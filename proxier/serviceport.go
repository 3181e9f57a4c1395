package proxier

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kproxy/kproxy/proxier/apivalidation"
)

// defaultAffinityTimeoutSeconds is the API server's default for ClientIP
// affinity, maxAffinitySeconds its maximum.
const (
	defaultAffinityTimeoutSeconds = 10800
	maxAffinitySeconds            = 86400
)

// ServicePortsFromService converts one Service into the service ports of one
// IP family. Problems that make a single port or address unusable are
// returned as warnings (the rest of the Service still works); a Service that
// must be ignored entirely returns nil ports.
func ServicePortsFromService(svc *v1.Service, family v1.IPFamily) (map[ServicePortName]*ServicePort, []error) {
	list, warnings := servicePortsOf(svc, family)
	if list == nil {
		return nil, warnings
	}
	ports := make(map[ServicePortName]*ServicePort, len(list))
	for _, p := range list {
		ports[p.Name] = p
	}
	return ports, warnings
}

// servicePortsOf is ServicePortsFromService as a list in spec order, which
// the Tracker keeps per Service (a Service has one or a few ports).
func servicePortsOf(svc *v1.Service, family v1.IPFamily) ([]*ServicePort, []error) {
	if shouldSkipService(svc) {
		return nil, nil
	}
	clusterIP, ok, err := clusterIPForFamily(svc, family)
	if err != nil {
		return nil, []error{err}
	}
	if !ok {
		return nil, nil
	}
	if err := checkWrittenNumbers(svc); err != nil {
		return nil, []error{err}
	}
	shared, warnings := sharedFieldsOf(svc, family)
	ports := make([]*ServicePort, 0, len(svc.Spec.Ports))
	name := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		port, err := newServicePort(name, sp, clusterIP, shared)
		if err != nil {
			warnings = append(warnings, fmt.Errorf("spec.ports[%d]: %w", i, err))
			continue
		}
		if slices.ContainsFunc(ports, func(p *ServicePort) bool { return p.Name == port.Name }) {
			warnings = append(warnings, fmt.Errorf("spec.ports[%d]: duplicate port %q/%s ignored", i, sp.Name, port.Protocol))
			continue
		}
		ports = append(ports, port)
	}
	return slices.Clip(ports), warnings
}

// checkWrittenNumbers refuses a Service whose health-check node port or
// affinity timeout would make an invalid rule. The validation in front of
// the trackers refuses such Services first; this keeps the renderers safe
// from a tracker fed directly.
func checkWrittenNumbers(svc *v1.Service) error {
	if hc := svc.Spec.HealthCheckNodePort; hc < 0 || hc > 65535 {
		return fmt.Errorf("spec.healthCheckNodePort %d out of range [0, 65535]", hc)
	}
	if c := svc.Spec.SessionAffinityConfig; svc.Spec.SessionAffinity == v1.ServiceAffinityClientIP &&
		c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
		if t := *c.ClientIP.TimeoutSeconds; t < 1 || t > maxAffinitySeconds {
			return fmt.Errorf("spec.sessionAffinityConfig.clientIP.timeoutSeconds %d out of range [1, %d]", t, maxAffinitySeconds)
		}
	}
	return nil
}

func shouldSkipService(svc *v1.Service) bool {
	return svc.Spec.Type == v1.ServiceTypeExternalName ||
		svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == v1.ClusterIPNone
}

func clusterIPForFamily(svc *v1.Service, family v1.IPFamily) (netip.Addr, bool, error) {
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 {
		ips = []string{svc.Spec.ClusterIP}
	}
	for i, s := range ips {
		addr, err := apivalidation.ParseAddr(s)
		if err != nil {
			return netip.Addr{}, false, fmt.Errorf("spec.clusterIPs[%d]: %w", i, err)
		}
		if FamilyOf(addr) == family {
			return addr, true, nil
		}
	}
	return netip.Addr{}, false, nil
}

// FamilyOf returns the IP family of an address.
func FamilyOf(a netip.Addr) v1.IPFamily {
	if a.Unmap().Is4() {
		return v1.IPv4Protocol
	}
	return v1.IPv6Protocol
}

// sharedFields holds what every port of one Service has in common.
type sharedFields struct {
	externalIPs     []netip.Addr
	lbVIPs          []netip.Addr
	sourceRanges    []netip.Prefix
	badRanges       bool
	healthCheck     int32
	externalLocal   bool
	internalLocal   bool
	affinitySeconds int32
}

func sharedFieldsOf(svc *v1.Service, family v1.IPFamily) (sharedFields, []error) {
	var warns []error
	f := sharedFields{
		externalLocal: externalPolicyLocal(svc),
		internalLocal: svc.Spec.InternalTrafficPolicy != nil &&
			*svc.Spec.InternalTrafficPolicy == v1.ServiceInternalTrafficPolicyLocal,
	}
	f.externalIPs, warns = addrsOfFamily("spec.externalIPs", svc.Spec.ExternalIPs, family, warns)
	f.lbVIPs, warns = addrsOfFamily("status.loadBalancer.ingress", vipIngressIPs(svc), family, warns)
	f.sourceRanges, f.badRanges, warns = prefixesOfFamily(svc.Spec.LoadBalancerSourceRanges, family, warns)
	if svc.Spec.Type == v1.ServiceTypeLoadBalancer && f.externalLocal {
		f.healthCheck = svc.Spec.HealthCheckNodePort
	}
	if svc.Spec.SessionAffinity == v1.ServiceAffinityClientIP {
		f.affinitySeconds = defaultAffinityTimeoutSeconds
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			f.affinitySeconds = *c.ClientIP.TimeoutSeconds
		}
	}
	return f, warns
}

func newServicePort(svc types.NamespacedName, sp *v1.ServicePort, clusterIP netip.Addr, f sharedFields) (*ServicePort, error) {
	proto := sp.Protocol
	if proto == "" {
		proto = v1.ProtocolTCP
	}
	if proto != v1.ProtocolTCP && proto != v1.ProtocolUDP && proto != v1.ProtocolSCTP {
		return nil, fmt.Errorf("unsupported protocol %q", sp.Protocol)
	}
	if sp.Port < 1 || sp.Port > 65535 {
		return nil, fmt.Errorf("port %d out of range [1, 65535]", sp.Port)
	}
	if sp.NodePort < 0 || sp.NodePort > 65535 {
		return nil, fmt.Errorf("nodePort %d out of range [0, 65535]", sp.NodePort)
	}
	return &ServicePort{
		Name:                     ServicePortName{NamespacedName: svc, Port: sp.Name, Protocol: proto},
		ClusterIP:                clusterIP,
		Port:                     sp.Port,
		Protocol:                 proto,
		NodePort:                 sp.NodePort,
		ExternalIPs:              f.externalIPs,
		LoadBalancerVIPs:         f.lbVIPs,
		LoadBalancerSourceRanges: f.sourceRanges,
		HealthCheckNodePort:      f.healthCheck,
		// Set per port: an unparseable range closes every port's LB VIPs.
		LoadBalancerSourceRangesInvalid: f.badRanges,
		ExternalPolicyLocal:             f.externalLocal,
		InternalPolicyLocal:             f.internalLocal,
		AffinityTimeoutSeconds:          f.affinitySeconds,
	}, nil
}

// externalPolicyLocal follows upstream: ETP=Local applies only to externally
// reachable service types (NodePort, LoadBalancer, or ClusterIP with external IPs).
func externalPolicyLocal(svc *v1.Service) bool {
	reachable := svc.Spec.Type == v1.ServiceTypeLoadBalancer || svc.Spec.Type == v1.ServiceTypeNodePort ||
		(svc.Spec.Type == v1.ServiceTypeClusterIP && len(svc.Spec.ExternalIPs) > 0)
	return reachable && svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal
}

// vipIngressIPs returns load-balancer ingress IPs in VIP mode; ipMode Proxy
// addresses are not captured (their traffic arrives through the NodePort).
func vipIngressIPs(svc *v1.Service) []string {
	var ips []string
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IP == "" {
			continue
		}
		if ing.IPMode != nil && *ing.IPMode != v1.LoadBalancerIPModeVIP {
			continue
		}
		ips = append(ips, ing.IP)
	}
	return ips
}

func addrsOfFamily(field string, in []string, family v1.IPFamily, warns []error) ([]netip.Addr, []error) {
	var out []netip.Addr
	for i, s := range in {
		a, err := apivalidation.ParseAddr(s)
		if err != nil {
			warns = append(warns, fmt.Errorf("%s[%d]: %w", field, i, err))
			continue
		}
		if FamilyOf(a) == family {
			out = append(out, a)
		}
	}
	return out, warns
}

// prefixesOfFamily parses loadBalancerSourceRanges as upstream does
// (blanks trimmed, legacy syntax, host bits cleared) and keeps those of
// family. bad reports an entry that could not be parsed: the caller fails
// closed on it.
func prefixesOfFamily(in []string, family v1.IPFamily, warns []error) (out []netip.Prefix, bad bool, _ []error) {
	for i, s := range in {
		p, err := apivalidation.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			bad = true
			warns = append(warns, fmt.Errorf("spec.loadBalancerSourceRanges[%d]: %w: load-balancer IPs allow no source for it", i, err))
			continue
		}
		if FamilyOf(p.Addr()) == family {
			out = append(out, p)
		}
	}
	return out, bad, warns
}
