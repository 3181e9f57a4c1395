package nftables

import (
	"crypto/sha256"
	"encoding/base32"
	"strconv"
	"strings"

	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
)

// Table names: kproxy owns "table ip kube-proxy" and "table ip6 kube-proxy",
// upstream's names, so the two replace each other without cleanup.
const (
	// TableName is the name of the table in both families (the cleanup's
	// netfilter.NFTablesTable).
	TableName = netfilter.NFTablesTable
	// TableFamilyIPv4 and TableFamilyIPv6 are the nft families of the IPv4 and IPv6 tables.
	TableFamilyIPv4 = "ip"
	TableFamilyIPv6 = "ip6"
)

// Prefixes of the per-service objects (upstream's), and the longest base
// name knftables accepts after such a prefix (NameLengthMax 256 − 16).
const (
	clusterChainPrefix  = "service-"
	localChainPrefix    = "local-"
	externalChainPrefix = "external-"
	endpointChainPrefix = "endpoint-"
	affinitySetPrefix   = "affinity-"
	firewallChainPrefix = "firewall-"
	nameBaseLengthMax   = 256 - 16
)

// hashAndTruncate is upstream's: the first 8 characters of the padded
// base32 SHA-256 of name, "-", name; cut to 237 characters plus "..." when
// longer than nameBaseLengthMax. The hash keeps truncated names unique and
// makes chains of one service that differ in a digit easy to tell apart.
func hashAndTruncate(name string) string {
	sum := sha256.Sum256([]byte(name))
	encoded := base32.StdEncoding.EncodeToString(sum[:])
	out := encoded[:8] + "-" + name
	if len(out) > nameBaseLengthMax {
		out = out[:nameBaseLengthMax-3] + "..."
	}
	return out
}

// serviceNameBase is "<hash>-ns/name/proto/port". Namespace, Service and
// port names are [a-z0-9-] (validated), so they are safe in chain names; "/"
// separates them and marks the chain as a service chain.
func serviceNameBase(n proxier.ServicePortName) string {
	return hashAndTruncate(n.Namespace + "/" + n.Name + "/" + strings.ToLower(string(n.Protocol)) + "/" + n.Port)
}

// endpointNameBase is "<hash>-ns/name/proto/port__ip/port", with the colons of
// an IPv6 address replaced by dots (not allowed in chain names).
func endpointNameBase(n proxier.ServicePortName, ep *proxier.Endpoint) string {
	ip := strings.ReplaceAll(ep.IP.String(), ":", ".")
	return hashAndTruncate(n.Namespace + "/" + n.Name + "/" + strings.ToLower(string(n.Protocol)) + "/" + n.Port +
		"__" + ip + "/" + strconv.Itoa(int(ep.Port)))
}

// serviceNames are the chain names of one service port.
type serviceNames struct {
	cluster, local, external, firewall string
}

func namesOf(n proxier.ServicePortName) serviceNames {
	base := serviceNameBase(n)
	return serviceNames{cluster: clusterChainPrefix + base, local: localChainPrefix + base,
		external: externalChainPrefix + base, firewall: firewallChainPrefix + base}
}

// endpointChainName and affinitySetName are used only with ClientIP affinity.
func endpointChainName(n proxier.ServicePortName, ep *proxier.Endpoint) string {
	return endpointChainPrefix + endpointNameBase(n, ep)
}

func affinitySetName(n proxier.ServicePortName, ep *proxier.Endpoint) string {
	return affinitySetPrefix + endpointNameBase(n, ep)
}

// IsServiceChainName reports whether chain is a per-service chain (kproxy's
// or upstream's): only those contain a "/".
func IsServiceChainName(chain string) bool { return strings.Contains(chain, "/") }

// isAffinitySetName reports whether set is a per-endpoint affinity set.
func isAffinitySetName(set string) bool { return strings.HasPrefix(set, affinitySetPrefix) }
