package proxier

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kproxy/kproxy/proxier/apivalidation"
)

// sliceEndpoints is one EndpointSlice reduced to what kproxy uses:
// endpoints per service port. It is a list, not a map: a slice has one or
// a few ports, and a map keyed by the 64-byte ServicePortName takes about
// 750 bytes even with one entry (10k slices: 7.5 MB for a one-port list).
type sliceEndpoints []portEndpoints

// portEndpoints are the endpoints of one service port.
type portEndpoints struct {
	name ServicePortName
	eps  []Endpoint
}

// of returns the endpoints of the service port name, nil when it has none.
func (s sliceEndpoints) of(name ServicePortName) []Endpoint {
	for i := range s {
		if s[i].name == name {
			return s[i].eps
		}
	}
	return nil
}

// namedSlice is one EndpointSlice of a Service, by the slice's name.
type namedSlice struct {
	name string
	eps  sliceEndpoints
}

// ServiceNameOfSlice returns the Service an EndpointSlice belongs to (its
// kubernetes.io/service-name label), or false when it has none.
func ServiceNameOfSlice(slice *discovery.EndpointSlice) (types.NamespacedName, bool) {
	name := slice.Labels[discovery.LabelServiceName]
	if name == "" {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: slice.Namespace, Name: name}, true
}

// sliceFamily maps an EndpointSlice address type to an IP family; FQDN slices have none.
func sliceFamily(slice *discovery.EndpointSlice) (v1.IPFamily, bool) {
	switch slice.AddressType {
	case discovery.AddressTypeIPv4:
		return v1.IPv4Protocol, true
	case discovery.AddressTypeIPv6:
		return v1.IPv6Protocol, true
	}
	return "", false
}

// endpointsFromSlice converts one slice for a family. Invalid ports and
// addresses are skipped and reported; the rest of the slice still counts.
func endpointsFromSlice(slice *discovery.EndpointSlice, svc types.NamespacedName, family v1.IPFamily, nodeName string) (sliceEndpoints, []error) {
	var warns []error
	out := make(sliceEndpoints, 0, len(slice.Ports))
	for i, p := range slice.Ports {
		name, err := slicePortName(svc, p)
		if err != nil {
			warns = append(warns, fmt.Errorf("ports[%d]: %w", i, err))
			continue
		}
		if slices.ContainsFunc(out, func(pe portEndpoints) bool { return pe.name == name }) {
			warns = append(warns, fmt.Errorf("ports[%d]: duplicate port %q/%s ignored", i, name.Port, name.Protocol))
			continue
		}
		eps, epWarns := endpointsForPort(slice, *p.Port, family, nodeName)
		if i == 0 {
			warns = append(warns, epWarns...) // report bad addresses once, not per port
		}
		out = append(out, portEndpoints{name: name, eps: eps})
	}
	return slices.Clip(out), warns
}

func slicePortName(svc types.NamespacedName, p discovery.EndpointPort) (ServicePortName, error) {
	if p.Name == nil {
		return ServicePortName{}, fmt.Errorf("port has no name")
	}
	if p.Port == nil || *p.Port < 1 || *p.Port > 65535 {
		return ServicePortName{}, fmt.Errorf("port %q has no valid number", *p.Name)
	}
	proto := v1.ProtocolTCP
	if p.Protocol != nil {
		proto = *p.Protocol
	}
	if proto != v1.ProtocolTCP && proto != v1.ProtocolUDP && proto != v1.ProtocolSCTP {
		return ServicePortName{}, fmt.Errorf("port %q has unsupported protocol %q", *p.Name, proto)
	}
	return ServicePortName{NamespacedName: svc, Port: *p.Name, Protocol: proto}, nil
}

func endpointsForPort(slice *discovery.EndpointSlice, port int32, family v1.IPFamily, nodeName string) ([]Endpoint, []error) {
	var warns []error
	eps := make([]Endpoint, 0, len(slice.Endpoints))
	for i := range slice.Endpoints {
		ep := &slice.Endpoints[i]
		if len(ep.Addresses) == 0 {
			continue
		}
		addr, err := apivalidation.ParseAddr(ep.Addresses[0])
		if err != nil {
			warns = append(warns, fmt.Errorf("endpoints[%d]: %w", i, err))
			continue
		}
		if FamilyOf(addr) != family {
			warns = append(warns, fmt.Errorf("endpoints[%d]: address %q is not %s", i, ep.Addresses[0], family))
			continue
		}
		eps = append(eps, newEndpoint(ep, addr, port, nodeName))
	}
	// Sorted (stably: duplicates keep their order for mergeSlices) so that a
	// service's only slice can be used as its merged list without a copy.
	slices.SortStableFunc(eps, func(a, b Endpoint) int { return compareEndpoints(&a, &b) })
	return eps, warns
}

func newEndpoint(ep *discovery.Endpoint, addr netip.Addr, port int32, nodeName string) Endpoint {
	e := Endpoint{
		IP:          addr,
		Port:        port,
		Ready:       ep.Conditions.Ready == nil || *ep.Conditions.Ready,
		Serving:     ep.Conditions.Serving == nil || *ep.Conditions.Serving,
		Terminating: ep.Conditions.Terminating != nil && *ep.Conditions.Terminating,
	}
	if ep.NodeName != nil {
		e.NodeName = *ep.NodeName
		e.IsLocal = nodeName != "" && e.NodeName == nodeName
	}
	if ep.Zone != nil {
		e.Zone = *ep.Zone
	}
	if ep.Hints != nil && len(ep.Hints.ForZones)+len(ep.Hints.ForNodes) > 0 {
		h := &EndpointHints{}
		for _, z := range ep.Hints.ForZones {
			h.Zones = append(h.Zones, z.Name)
		}
		for _, n := range ep.Hints.ForNodes {
			h.Nodes = append(h.Nodes, n.Name)
		}
		e.Hints = h
	}
	return e
}

// mergeSlices merges the endpoints of every slice of one service, keyed by
// "ip:port": the first copy wins unless a later one is not terminating (a
// running pod that reused a terminating pod's IP). The result is sorted by
// endpoint string, as upstream orders rules. byName is sorted by name
// (storeSlice keeps it so).
func mergeSlices(byName []namedSlice) sliceEndpoints {
	if len(byName) == 1 {
		if out, ok := reuseSortedSlice(byName[0].eps); ok {
			return out
		}
	}
	merged := map[ServicePortName]map[string]Endpoint{}
	for _, ns := range byName {
		for _, pe := range ns.eps {
			m := merged[pe.name]
			if m == nil {
				m = map[string]Endpoint{}
				merged[pe.name] = m
			}
			for _, ep := range pe.eps {
				key := ep.String()
				if prev, ok := m[key]; ok && !(prev.Terminating && !ep.Terminating) {
					continue
				}
				m[key] = ep
			}
		}
	}
	out := make(sliceEndpoints, 0, len(merged))
	for spn, m := range merged {
		list := make([]Endpoint, 0, len(m))
		for _, ep := range m {
			list = append(list, ep)
		}
		slices.SortFunc(list, func(a, b Endpoint) int { return compareEndpoints(&a, &b) })
		out = append(out, portEndpoints{name: spn, eps: list})
	}
	return out
}

// reuseSortedSlice is mergeSlices for a service with one slice whose
// endpoints are already unique and in order (an EndpointSlice controller
// writes them sorted): the merged lists share the slice's arrays, clipped,
// instead of copying 100k endpoints at 10k services. ok is false otherwise.
func reuseSortedSlice(s sliceEndpoints) (sliceEndpoints, bool) {
	for _, pe := range s {
		for i := 1; i < len(pe.eps); i++ {
			if compareEndpoints(&pe.eps[i-1], &pe.eps[i]) >= 0 {
				return nil, false
			}
		}
	}
	out := make(sliceEndpoints, len(s))
	for i, pe := range s {
		out[i] = portEndpoints{name: pe.name, eps: pe.eps[:len(pe.eps):len(pe.eps)]}
	}
	return out, true
}

// compareEndpoints orders endpoints by their "ip:port" strings, as
// Endpoint.String would, without allocating.
func compareEndpoints(a, b *Endpoint) int {
	var ab, bb [64]byte
	return bytes.Compare(a.AppendString(ab[:0]), b.AppendString(bb[:0]))
}
