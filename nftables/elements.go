package nftables

import "sigs.k8s.io/knftables"

// container identifies one of the sets and maps whose elements services
// contribute.
type container uint8

const (
	cClusterIPs container = iota
	cServiceIPs
	cFirewallIPs
	cNoEndpointServices
	cNoEndpointNodePorts
	cServiceNodePorts
	cHairpin
	numContainers
)

type containerInfo struct {
	name  string
	isSet bool
}

var containers = [numContainers]containerInfo{
	cClusterIPs:          {"cluster-ips", true},
	cServiceIPs:          {"service-ips", false},
	cFirewallIPs:         {"firewall-ips", false},
	cNoEndpointServices:  {"no-endpoint-services", false},
	cNoEndpointNodePorts: {"no-endpoint-nodeports", false},
	cServiceNodePorts:    {"service-nodeports", false},
	cHairpin:             {"hairpin-connections", true},
}

// element is one set or map element a service contributes. key is the
// element's key joined by " . " (its nft text); for a map, value is the
// verdict. comment is upstream's service port name on no-endpoint elements.
type element struct {
	c       container
	key     string
	value   string
	comment string
}

// elemValue is what an element's key maps to; two services contributing
// one key (e.g. a shared external IP and port) may disagree on it.
type elemValue struct {
	value, comment string
}

func (e *element) val() elemValue { return elemValue{value: e.value, comment: e.comment} }

// knftContainer is the set or map object of c (name only, for flushes).
func knftContainer(c container) knftables.Object {
	if containers[c].isSet {
		return &knftables.Set{Name: containers[c].name}
	}
	return &knftables.Map{Name: containers[c].name}
}
