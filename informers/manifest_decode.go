package informers

import (
	"encoding/json"
	"fmt"
	"net/netip"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var (
	endpointSliceAPIVersion = discovery.SchemeGroupVersion.String()
	serviceCIDRAPIVersion   = networkingv1.SchemeGroupVersion.String()
)

// clusterScoped are the kinds read that have no namespace.
func clusterScoped(kind string) bool { return kind == "Node" || kind == "ServiceCIDR" }

// decodeTyped decodes a Service, EndpointSlice, Node or ServiceCIDR;
// anything else is recorded as ignored, an invalid ServiceCIDR as rejected.
// Decoding is lenient about unknown fields (as the API server is) but not
// about values of the wrong type.
func (p *manifestParser) decodeTyped(raw []byte, tm metav1.TypeMeta, loc *DocumentError) error {
	switch {
	case tm.APIVersion == "v1" && tm.Kind == "Service":
		svc := &v1.Service{}
		if err := p.decode(raw, tm, svc, &svc.TypeMeta, &svc.ObjectMeta, loc); err != nil {
			return err
		}
		defaultService(svc)
		p.objs.Services = append(p.objs.Services, svc)
	case tm.APIVersion == endpointSliceAPIVersion && tm.Kind == "EndpointSlice":
		slice := &discovery.EndpointSlice{}
		if err := p.decode(raw, tm, slice, &slice.TypeMeta, &slice.ObjectMeta, loc); err != nil {
			return err
		}
		defaultEndpointSlice(slice)
		p.objs.EndpointSlices = append(p.objs.EndpointSlices, slice)
	case tm.APIVersion == "v1" && tm.Kind == "Node":
		node := &v1.Node{}
		if err := p.decode(raw, tm, node, &node.TypeMeta, &node.ObjectMeta, loc); err != nil {
			return err
		}
		p.objs.Nodes = append(p.objs.Nodes, node)
	case tm.APIVersion == serviceCIDRAPIVersion && tm.Kind == "ServiceCIDR":
		sc := &networkingv1.ServiceCIDR{}
		if err := p.decode(raw, tm, sc, &sc.TypeMeta, &sc.ObjectMeta, loc); err != nil {
			return err
		}
		// As the API server would refuse it: skipped, not an error of the
		// whole read (the Services keep working without its drop rule).
		if errs := ValidateServiceCIDR(sc); len(errs) > 0 {
			p.objs.Rejected = append(p.objs.Rejected, RejectedObject{Location: loc.location(),
				Kind: tm.Kind, Name: sc.Name, Reason: errs.ToAggregate().Error()})
			return nil
		}
		p.objs.ServiceCIDRs = append(p.objs.ServiceCIDRs, sc)
	default:
		var meta struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		// The name only decorates a log line; a malformed one is not an error.
		_ = json.Unmarshal(raw, &meta)
		p.objs.Ignored = append(p.objs.Ignored, IgnoredObject{
			Location: loc.location(), APIVersion: tm.APIVersion, Kind: tm.Kind, Name: meta.Metadata.Name,
		})
	}
	return nil
}

// decode fills obj from raw, sets its TypeMeta from the document (list items
// may inherit it), defaults the namespace of namespaced kinds and rejects
// nameless and duplicate objects.
func (p *manifestParser) decode(raw []byte, tm metav1.TypeMeta, obj any, objType *metav1.TypeMeta, objMeta *metav1.ObjectMeta, loc *DocumentError) error {
	if err := json.Unmarshal(raw, obj); err != nil {
		return withLocation(loc, fmt.Errorf("decode %s: %w", tm.Kind, err))
	}
	*objType = tm
	if objMeta.Name == "" {
		return withLocation(loc, fmt.Errorf("%s has no metadata.name", tm.Kind))
	}
	if clusterScoped(tm.Kind) {
		objMeta.Namespace = ""
	} else if objMeta.Namespace == "" {
		objMeta.Namespace = metav1.NamespaceDefault
	}
	key := tm.Kind + " " + objMeta.Namespace + "/" + objMeta.Name
	if clusterScoped(tm.Kind) {
		key = tm.Kind + " " + objMeta.Name
	}
	here := loc.location()
	if first, dup := p.seen[key]; dup {
		return withLocation(loc, fmt.Errorf("duplicate %s (first defined in %s)", key, first))
	}
	p.seen[key] = here
	return nil
}

// defaultService applies the API server's defaults that the proxy depends
// on, so hand-written manifests behave like objects read from a cluster.
func defaultService(svc *v1.Service) {
	spec := &svc.Spec
	if spec.Type == "" {
		spec.Type = v1.ServiceTypeClusterIP
	}
	if spec.SessionAffinity == "" {
		spec.SessionAffinity = v1.ServiceAffinityNone
	}
	if spec.SessionAffinity == v1.ServiceAffinityClientIP && spec.SessionAffinityConfig == nil {
		timeout := v1.DefaultClientIPServiceAffinitySeconds
		spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: &timeout}}
	}
	for i := range spec.Ports {
		port := &spec.Ports[i]
		if port.Protocol == "" {
			port.Protocol = v1.ProtocolTCP
		}
		if port.TargetPort == (intstr.IntOrString{}) {
			port.TargetPort = intstr.FromInt32(port.Port)
		}
	}
	defaultClusterIPs(spec)
	if spec.InternalTrafficPolicy == nil && spec.Type != v1.ServiceTypeExternalName {
		policy := v1.ServiceInternalTrafficPolicyCluster
		spec.InternalTrafficPolicy = &policy
	}
	if spec.ExternalTrafficPolicy == "" &&
		(spec.Type == v1.ServiceTypeNodePort || spec.Type == v1.ServiceTypeLoadBalancer) {
		spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyCluster
	}
}

// defaultClusterIPs keeps clusterIP and clusterIPs consistent and derives
// ipFamilies from them, as allocation does on a real API server.
func defaultClusterIPs(spec *v1.ServiceSpec) {
	if len(spec.ClusterIPs) == 0 && spec.ClusterIP != "" {
		spec.ClusterIPs = []string{spec.ClusterIP}
	}
	if spec.ClusterIP == "" && len(spec.ClusterIPs) > 0 {
		spec.ClusterIP = spec.ClusterIPs[0]
	}
	if len(spec.IPFamilies) > 0 {
		return
	}
	for _, ip := range spec.ClusterIPs {
		addr, err := netip.ParseAddr(ip)
		if err != nil {
			continue
		}
		family := v1.IPv4Protocol
		if addr.Unmap().Is6() {
			family = v1.IPv6Protocol
		}
		spec.IPFamilies = append(spec.IPFamilies, family)
	}
}

func defaultEndpointSlice(slice *discovery.EndpointSlice) {
	for i := range slice.Ports {
		port := &slice.Ports[i]
		if port.Name == nil {
			name := ""
			port.Name = &name
		}
		if port.Protocol == nil {
			protocol := v1.ProtocolTCP
			port.Protocol = &protocol
		}
	}
}
