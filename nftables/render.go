package nftables

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/kproxy/kproxy/nftables/nftnl"
	"github.com/kproxy/kproxy/proxier"
)

// chain is a per-service chain and its rules in order.
type chain struct {
	name  string
	rules []nftnl.Rule
}

// sameRules reports whether two chains' rules are the same, in order.
func sameRules(a, b []nftnl.Rule, f nftnl.Family) bool {
	return slices.EqualFunc(a, b, func(x, y nftnl.Rule) bool { return x.Equal(y, f) })
}

// affinitySet is a per-endpoint ClientIP affinity set.
type affinitySet struct {
	name    string
	timeout int32
}

// rendered is everything one service port puts in the table: its chains
// (cluster/local policy, external, firewall, endpoint), affinity sets and
// the elements it contributes to the shared sets and maps. It is a pure
// function of the service port, its endpoints and the renderContext.
type rendered struct {
	chains []chain
	sets   []affinitySet
	elems  []element
}

// renderContext is what rendering needs besides the service port.
type renderContext struct {
	fam  family
	masq nftnl.MarkOr
	// ifLocal is the local detector's "from a pod" match (nil when none).
	ifLocal nftnl.Match
	// nodeIP is this family's primary node IP (firewall: allow from the node).
	nodeIP netip.Addr
}

// serviceView is the categorized view of one service port that rendering
// decides on, upstream's variables named the same way.
type serviceView struct {
	name        proxier.ServicePortName
	sp          *proxier.ServicePort
	names       serviceNames
	proto, port string
	comment     string
	cluster     []proxier.Endpoint
	local       []proxier.Endpoint
	reachable   []proxier.Endpoint
	hasAny      bool
	usesCluster bool
	usesLocal   bool
	usesExt     bool
	usesFW      bool
	hasInternal bool
	hasExternal bool
	internalTo  string
	externalTo  string // the external policy chain
}

func newServiceView(name proxier.ServicePortName, sp *proxier.ServicePort, eps *proxier.EndpointSet) *serviceView {
	v := &serviceView{name: name, sp: sp, names: namesOf(name), proto: strings.ToLower(string(sp.Protocol)),
		port: strconv.Itoa(int(sp.Port)), comment: truncateComment(name.String())}
	if eps != nil {
		v.cluster, v.local, v.hasAny = eps.Cluster, eps.Local, eps.HasAny
	}
	v.reachable = reachableEndpoints(v.cluster, v.local)
	v.usesCluster = len(v.cluster) > 0 && sp.UsesClusterEndpoints()
	v.usesLocal = len(v.local) > 0 && sp.UsesLocalEndpoints()
	v.hasInternal, v.internalTo = v.hasAny, v.names.cluster
	if sp.InternalPolicyLocal {
		v.internalTo = v.names.local
		v.hasInternal = v.hasAny && len(v.local) > 0
	}
	v.hasExternal, v.externalTo = v.hasAny, v.names.cluster
	if sp.ExternalPolicyLocal {
		v.externalTo = v.names.local
		v.hasExternal = v.hasAny && len(v.local) > 0
	}
	v.usesExt = v.hasAny && sp.ExternallyAccessible()
	v.usesFW = len(sp.LoadBalancerVIPs) > 0 && sp.FirewallRequired()
	return v
}

// reachableEndpoints is the union of the cluster and local endpoints, in
// order, without duplicates (upstream's allLocallyReachableEndpoints).
func reachableEndpoints(cluster, local []proxier.Endpoint) []proxier.Endpoint {
	if len(local) == 0 {
		return cluster
	}
	if len(cluster) == 0 {
		return local
	}
	out := append([]proxier.Endpoint(nil), cluster...)
	for i := range local {
		dup := false
		for j := range cluster {
			if cluster[j].IP == local[i].IP && cluster[j].Port == local[i].Port {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, local[i])
		}
	}
	return out
}

// commentLengthMax is knftables' CommentLengthMax.
const commentLengthMax = 128

func truncateComment(s string) string {
	if len(s) > commentLengthMax {
		return s[:commentLengthMax]
	}
	return s
}

// render renders one service port.
func render(ctx *renderContext, name proxier.ServicePortName, sp *proxier.ServicePort, eps *proxier.EndpointSet) *rendered {
	v := newServiceView(name, sp, eps)
	r := &rendered{}
	renderElements(r, v)
	renderChains(ctx, r, v)
	return r
}
