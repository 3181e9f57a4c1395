package apivalidation

import (
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The API server's limits on an EndpointSlice.
const (
	maxEndpoints = 1000
	maxAddresses = 100
	maxPorts     = 20000
	maxHints     = 8
)

// ValidateEndpointSlice returns what kube-apiserver would refuse in the
// fields of slice that kproxy reads (see the package documentation). FQDN
// slices are checked only for their metadata: kproxy ignores them.
func ValidateEndpointSlice(slice *discovery.EndpointSlice) field.ErrorList {
	errs := validateMeta(nil, slice.Namespace, slice.Name, isDNS1123Subdomain, validation.IsDNS1123Subdomain)
	if v, ok := slice.Labels[discovery.LabelServiceName]; ok {
		errs = checkName(errs, isLabelValue(v), v, validation.IsValidLabelValue,
			func() *field.Path { return field.NewPath("metadata", "labels").Key(discovery.LabelServiceName) })
	}
	switch slice.AddressType {
	case discovery.AddressTypeIPv4, discovery.AddressTypeIPv6:
		errs = validateEndpoints(errs, slice.Endpoints, slice.AddressType)
	case discovery.AddressTypeFQDN:
	case "":
		errs = append(errs, field.Required(field.NewPath("addressType"), ""))
	default:
		errs = append(errs, field.NotSupported(field.NewPath("addressType"), slice.AddressType,
			[]string{string(discovery.AddressTypeFQDN), string(discovery.AddressTypeIPv4), string(discovery.AddressTypeIPv6)}))
	}
	return validateSlicePorts(errs, slice.Ports)
}

func validateEndpoints(errs field.ErrorList, eps []discovery.Endpoint, typ discovery.AddressType) field.ErrorList {
	if len(eps) > maxEndpoints {
		return append(errs, field.TooMany(field.NewPath("endpoints"), len(eps), maxEndpoints))
	}
	for i := range eps {
		ep := &eps[i]
		path := func() *field.Path { return field.NewPath("endpoints").Index(i) }
		switch n := len(ep.Addresses); {
		case n == 0:
			errs = append(errs, field.Required(path().Child("addresses"), "must contain at least 1 address"))
		case n > maxAddresses:
			errs = append(errs, field.TooMany(path().Child("addresses"), n, maxAddresses))
		}
		for j, s := range ep.Addresses {
			if reason := endpointAddressReason(s, typ); reason != "" {
				errs = append(errs, field.Invalid(path().Child("addresses").Index(j), s, reason))
			}
		}
		if ep.NodeName != nil {
			errs = checkName(errs, isDNS1123Subdomain(*ep.NodeName), *ep.NodeName, validation.IsDNS1123Subdomain,
				func() *field.Path { return path().Child("nodeName") })
		}
		if ep.Hints != nil {
			errs = validateHints(errs, ep.Hints, path)
		}
	}
	return errs
}

// endpointAddressReason says why s is not a valid address of an endpoint
// of a slice of type typ, or "".
func endpointAddressReason(s string, typ discovery.AddressType) string {
	a, err := ParseAddr(s)
	switch {
	case err != nil:
		return "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
	case typ == discovery.AddressTypeIPv4 && !a.Is4():
		return "must be an IPv4 address"
	case typ == discovery.AddressTypeIPv6 && a.Is4():
		return "must be an IPv6 address"
	}
	return specialIPReason(a)
}

func validateHints(errs field.ErrorList, h *discovery.EndpointHints, path func() *field.Path) field.ErrorList {
	if len(h.ForZones) > maxHints {
		return append(errs, field.TooMany(path().Child("hints", "forZones"), len(h.ForZones), maxHints))
	}
	for i, z := range h.ForZones {
		p := func() *field.Path { return path().Child("hints", "forZones").Index(i).Child("name") }
		errs = checkName(errs, isLabelValue(z.Name), z.Name, validation.IsValidLabelValue, p)
		for j := range i {
			if h.ForZones[j].Name == z.Name {
				errs = append(errs, field.Duplicate(p(), z.Name))
				break
			}
		}
	}
	if len(h.ForNodes) > maxHints {
		return append(errs, field.TooMany(path().Child("hints", "forNodes"), len(h.ForNodes), maxHints))
	}
	for i, n := range h.ForNodes {
		p := func() *field.Path { return path().Child("hints", "forNodes").Index(i).Child("name") }
		errs = checkName(errs, isDNS1123Subdomain(n.Name), n.Name, validation.IsDNS1123Subdomain, p)
		for j := range i {
			if h.ForNodes[j].Name == n.Name {
				errs = append(errs, field.Duplicate(p(), n.Name))
				break
			}
		}
	}
	return errs
}

// validateSlicePorts checks ports[].name and protocol as the API server
// does, after its defaults (nil name is "", nil protocol TCP). Port numbers
// are not checked by the API server: the tracker skips unusable ones.
func validateSlicePorts(errs field.ErrorList, ports []discovery.EndpointPort) field.ErrorList {
	if len(ports) > maxPorts {
		return append(errs, field.TooMany(field.NewPath("ports"), len(ports), maxPorts))
	}
	for i := range ports {
		path := func(child string) *field.Path { return field.NewPath("ports").Index(i).Child(child) }
		name := slicePortName(&ports[i])
		if name != "" {
			errs = checkName(errs, isDNS1123Label(name), name, validation.IsDNS1123Label, func() *field.Path { return path("name") })
		}
		for j := range i {
			if slicePortName(&ports[j]) == name {
				errs = append(errs, field.Duplicate(path("name"), name))
				break
			}
		}
		if p := ports[i].Protocol; p != nil && !supportedProtocol(*p) {
			errs = append(errs, field.NotSupported(path("protocol"), *p, supportedProtocols))
		}
	}
	return errs
}

func slicePortName(p *discovery.EndpointPort) string {
	if p.Name == nil {
		return ""
	}
	return *p.Name
}

// NodeAddressErrors lists the Node's InternalIP and ExternalIP addresses
// kproxy cannot use (see NodeAddresses in the proxier): the Node object
// stays in use, these addresses are skipped.
func NodeAddressErrors(node *v1.Node) field.ErrorList {
	var errs field.ErrorList
	for i, a := range node.Status.Addresses {
		if a.Type != v1.NodeInternalIP && a.Type != v1.NodeExternalIP {
			continue
		}
		if _, err := ParseAddr(a.Address); err != nil {
			errs = append(errs, field.Invalid(field.NewPath("status", "addresses").Index(i).Child("address"), a.Address,
				"must be a valid IP address without a zone"))
		}
	}
	return errs
}
