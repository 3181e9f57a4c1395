package nftables

import (
	"net/netip"
	"strconv"
)

// renderElements adds the elements of one service port, upstream's:
// hairpin entries for local endpoints, the ClusterIP in cluster-ips, and
// for each destination (ClusterIP, external IPs, LB VIPs, NodePort) a
// dispatch element when it has endpoints and a drop/reject element when the
// traffic that reaches it has none.
func renderElements(r *rendered, v *serviceView) {
	for i := range v.reachable {
		ep := &v.reachable[i]
		if ep.IsLocal {
			ip := ep.IP.String()
			r.add(cHairpin, ip+" . "+ip+" . "+v.proto+" . "+strconv.Itoa(int(ep.Port)), "", "")
		}
	}
	internalVerdict, externalVerdict := "", ""
	if !v.hasAny {
		internalVerdict, externalVerdict = "goto "+rejectChain, "goto "+rejectChain
	} else {
		if !v.hasInternal {
			internalVerdict = "drop"
		}
		if !v.hasExternal {
			externalVerdict = "drop"
		}
	}
	clusterIP := v.sp.ClusterIP.String()
	r.add(cClusterIPs, clusterIP, "", "")
	if v.hasInternal {
		r.add(cServiceIPs, v.ipKey(v.sp.ClusterIP), "goto "+v.internalTo, "")
	} else {
		r.add(cNoEndpointServices, v.ipKey(v.sp.ClusterIP), internalVerdict, v.comment)
	}
	for _, ip := range v.sp.ExternalIPs {
		v.externalDestination(r, ip, externalVerdict)
	}
	for _, ip := range v.sp.LoadBalancerVIPs {
		v.externalDestination(r, ip, externalVerdict)
		if v.usesFW {
			r.add(cFirewallIPs, v.ipKey(ip), "goto "+v.names.firewall, "")
		}
	}
	if v.sp.NodePort != 0 {
		key := v.proto + " . " + strconv.Itoa(int(v.sp.NodePort))
		if v.hasAny {
			r.add(cServiceNodePorts, key, "goto "+v.names.external, "")
		}
		if !v.hasExternal {
			r.add(cNoEndpointNodePorts, key, externalVerdict, v.comment)
		}
	}
}

// externalDestination adds the elements of an external IP or LB VIP.
func (v *serviceView) externalDestination(r *rendered, ip netip.Addr, verdict string) {
	if v.hasAny {
		r.add(cServiceIPs, v.ipKey(ip), "goto "+v.names.external, "")
	}
	if !v.hasExternal {
		r.add(cNoEndpointServices, v.ipKey(ip), verdict, v.comment)
	}
}

func (v *serviceView) ipKey(ip netip.Addr) string {
	return ip.String() + " . " + v.proto + " . " + v.port
}

func (r *rendered) add(c container, key, value, comment string) {
	r.elems = append(r.elems, element{c: c, key: key, value: value, comment: comment})
}
