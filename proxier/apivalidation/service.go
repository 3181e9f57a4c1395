package apivalidation

import (
	"fmt"
	"net/netip"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// maxAffinitySeconds is the API server's MaxClientIPServiceAffinitySeconds.
const maxAffinitySeconds = 86400

var (
	supportedServiceTypes = []string{string(v1.ServiceTypeClusterIP), string(v1.ServiceTypeExternalName),
		string(v1.ServiceTypeLoadBalancer), string(v1.ServiceTypeNodePort)}
	supportedProtocols = []string{string(v1.ProtocolSCTP), string(v1.ProtocolTCP), string(v1.ProtocolUDP)}
)

// ValidateService returns what kube-apiserver would refuse in the fields of
// svc that kproxy reads (see the package documentation).
func ValidateService(svc *v1.Service) field.ErrorList {
	errs := validateMeta(nil, svc.Namespace, svc.Name, isDNS1123Label, validation.IsDNS1123Label)
	spec := &svc.Spec
	typ := spec.Type
	if typ == "" {
		typ = v1.ServiceTypeClusterIP
	}
	switch typ {
	case v1.ServiceTypeExternalName:
		return errs // kproxy ignores ExternalName Services
	case v1.ServiceTypeClusterIP, v1.ServiceTypeNodePort, v1.ServiceTypeLoadBalancer:
	default:
		errs = append(errs, field.NotSupported(field.NewPath("spec", "type"), spec.Type, supportedServiceTypes))
	}
	headless := spec.ClusterIP == v1.ClusterIPNone
	errs = validateClusterIPs(errs, spec, typ)
	errs = validateServicePorts(errs, spec, typ, headless)
	errs = validateAffinity(errs, spec)
	errs = validateExternalIPs(errs, spec.ExternalIPs)
	errs = validateTrafficPolicies(errs, spec, typ)
	return validateIngress(errs, svc.Status.LoadBalancer.Ingress)
}

// validateServicePorts checks spec.ports as validateService and
// validateServicePort do.
func validateServicePorts(errs field.ErrorList, spec *v1.ServiceSpec, typ v1.ServiceType, headless bool) field.ErrorList {
	ports := spec.Ports
	if len(ports) == 0 && !headless {
		return append(errs, field.Required(field.NewPath("spec", "ports"), ""))
	}
	path := func(i int, child string) *field.Path {
		p := field.NewPath("spec", "ports").Index(i)
		if child != "" {
			p = p.Child(child)
		}
		return p
	}
	for i := range ports {
		p := &ports[i]
		errs = validatePortName(errs, ports, i, len(ports) > 1, func() *field.Path { return path(i, "name") })
		if !validPort(p.Port) {
			errs = append(errs, field.Invalid(path(i, "port"), p.Port, validation.InclusiveRangeError(1, 65535)))
		}
		proto := protocolOf(p.Protocol)
		if !supportedProtocol(proto) {
			errs = append(errs, field.NotSupported(path(i, "protocol"), p.Protocol, supportedProtocols))
		}
		switch {
		case p.NodePort != 0 && !validPort(p.NodePort):
			errs = append(errs, field.Invalid(path(i, "nodePort"), p.NodePort, validation.InclusiveRangeError(1, 65535)))
		case p.NodePort != 0 && typ == v1.ServiceTypeClusterIP:
			errs = append(errs, field.Forbidden(path(i, "nodePort"), "may not be used when `type` is 'ClusterIP'"))
		}
		for j := range i {
			q := &ports[j]
			if protocolOf(q.Protocol) != proto {
				continue
			}
			if q.Port == p.Port {
				errs = append(errs, field.Duplicate(path(i, ""), v1.ServicePort{Protocol: proto, Port: p.Port}))
			}
			if p.NodePort != 0 && q.NodePort == p.NodePort {
				errs = append(errs, field.Duplicate(path(i, "nodePort"), p.NodePort))
			}
		}
	}
	return errs
}

// validatePortName checks ports[i].name: required when there are several
// ports, a DNS-1123 label, unique.
func validatePortName(errs field.ErrorList, ports []v1.ServicePort, i int, required bool, path func() *field.Path) field.ErrorList {
	name := ports[i].Name
	if name == "" {
		if required {
			errs = append(errs, field.Required(path(), ""))
		}
		return errs
	}
	errs = checkName(errs, isDNS1123Label(name), name, validation.IsDNS1123Label, path)
	for j := range i {
		if ports[j].Name == name {
			return append(errs, field.Duplicate(path(), name))
		}
	}
	return errs
}

func validPort(p int32) bool { return p >= 1 && p <= 65535 }

// protocolOf applies the API server's default protocol.
func protocolOf(p v1.Protocol) v1.Protocol {
	if p == "" {
		return v1.ProtocolTCP
	}
	return p
}

func supportedProtocol(p v1.Protocol) bool {
	return p == v1.ProtocolTCP || p == v1.ProtocolUDP || p == v1.ProtocolSCTP
}

// validateAffinity checks sessionAffinity and its timeout, which kproxy
// writes into rules (--seconds).
func validateAffinity(errs field.ErrorList, spec *v1.ServiceSpec) field.ErrorList {
	switch spec.SessionAffinity {
	case "", v1.ServiceAffinityNone:
		if spec.SessionAffinityConfig != nil && spec.SessionAffinity != "" {
			errs = append(errs, field.Forbidden(field.NewPath("spec", "sessionAffinityConfig"),
				"must not be set when session affinity is None"))
		}
	case v1.ServiceAffinityClientIP:
		c := spec.SessionAffinityConfig
		if c == nil || c.ClientIP == nil || c.ClientIP.TimeoutSeconds == nil {
			return errs // defaulted to 10800 seconds
		}
		if t := *c.ClientIP.TimeoutSeconds; t <= 0 || t > maxAffinitySeconds {
			errs = append(errs, field.Invalid(field.NewPath("spec", "sessionAffinityConfig", "clientIP", "timeoutSeconds"),
				t, fmt.Sprintf("must be greater than 0 and less than %d", maxAffinitySeconds)))
		}
	default:
		errs = append(errs, field.NotSupported(field.NewPath("spec", "sessionAffinity"), spec.SessionAffinity,
			[]string{string(v1.ServiceAffinityClientIP), string(v1.ServiceAffinityNone)}))
	}
	return errs
}

// validateExternalIPs checks spec.externalIPs: IPs (legacy syntax allowed)
// that ValidateEndpointIP accepts.
func validateExternalIPs(errs field.ErrorList, ips []string) field.ErrorList {
	for i, s := range ips {
		a, err := ParseAddr(s)
		reason := ""
		if err != nil {
			reason = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
		} else {
			reason = specialIPReason(a)
		}
		if reason != "" {
			errs = append(errs, field.Invalid(field.NewPath("spec", "externalIPs").Index(i), s, reason))
		}
	}
	return errs
}

// validateTrafficPolicies checks externalTrafficPolicy, healthCheckNodePort
// and internalTrafficPolicy as validateServiceExternalTrafficPolicy and
// validateServiceInternalTrafficFieldsValue do.
func validateTrafficPolicies(errs field.ErrorList, spec *v1.ServiceSpec, typ v1.ServiceType) field.ErrorList {
	accessible := typ == v1.ServiceTypeLoadBalancer || typ == v1.ServiceTypeNodePort ||
		(typ == v1.ServiceTypeClusterIP && len(spec.ExternalIPs) > 0)
	etp := spec.ExternalTrafficPolicy
	switch {
	case !accessible && etp != "":
		errs = append(errs, field.Invalid(field.NewPath("spec", "externalTrafficPolicy"), etp,
			"may only be set for externally-accessible services"))
	case etp != "" && etp != v1.ServiceExternalTrafficPolicyCluster && etp != v1.ServiceExternalTrafficPolicyLocal:
		errs = append(errs, field.NotSupported(field.NewPath("spec", "externalTrafficPolicy"), etp,
			[]string{string(v1.ServiceExternalTrafficPolicyCluster), string(v1.ServiceExternalTrafficPolicyLocal)}))
	}
	needsHealthCheck := typ == v1.ServiceTypeLoadBalancer && etp == v1.ServiceExternalTrafficPolicyLocal
	hc := spec.HealthCheckNodePort
	switch {
	case hc != 0 && !needsHealthCheck:
		errs = append(errs, field.Invalid(field.NewPath("spec", "healthCheckNodePort"), hc,
			"may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
	case hc != 0 && !validPort(hc):
		errs = append(errs, field.Invalid(field.NewPath("spec", "healthCheckNodePort"), hc, validation.InclusiveRangeError(1, 65535)))
	}
	if itp := spec.InternalTrafficPolicy; itp != nil &&
		*itp != v1.ServiceInternalTrafficPolicyCluster && *itp != v1.ServiceInternalTrafficPolicyLocal {
		errs = append(errs, field.NotSupported(field.NewPath("spec", "internalTrafficPolicy"), *itp,
			[]string{string(v1.ServiceInternalTrafficPolicyCluster), string(v1.ServiceInternalTrafficPolicyLocal)}))
	}
	return errs
}

// validateIngress checks status.loadBalancer.ingress as
// ValidateLoadBalancerStatus does for the IPs and their mode.
func validateIngress(errs field.ErrorList, ingress []v1.LoadBalancerIngress) field.ErrorList {
	for i := range ingress {
		ing := &ingress[i]
		path := func(child string) *field.Path {
			return field.NewPath("status", "loadBalancer", "ingress").Index(i).Child(child)
		}
		if ing.IP != "" {
			if _, err := ParseAddr(ing.IP); err != nil {
				errs = append(errs, field.Invalid(path("ip"), ing.IP, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
			}
		}
		if m := ing.IPMode; m != nil {
			switch {
			case ing.IP == "":
				errs = append(errs, field.Forbidden(path("ipMode"), "may not be specified when `ip` is not set"))
			case *m != v1.LoadBalancerIPModeVIP && *m != v1.LoadBalancerIPModeProxy:
				errs = append(errs, field.NotSupported(path("ipMode"), *m,
					[]string{string(v1.LoadBalancerIPModeProxy), string(v1.LoadBalancerIPModeVIP)}))
			}
		}
	}
	return errs
}

// familyOf is the family of a parsed (unmapped) address.
func familyOf(a netip.Addr) v1.IPFamily {
	if a.Is4() {
		return v1.IPv4Protocol
	}
	return v1.IPv6Protocol
}
