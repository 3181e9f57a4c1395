package ipvs

import (
	"maps"
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/ipvs/vs"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
)

// Desired is the IPVS state a snapshot asks for.
type Desired struct {
	// Servers holds, per service port, its virtual servers in a stable order
	// (ClusterIP, external IPs, LB VIPs, node IPs). With BuildOptions.Only it
	// holds only those service ports (a deleted one maps to nothing).
	Servers map[proxier.ServicePortName][]vs.DesiredServer
	// Bind is every address to bind on kube-ipvs0, sorted, always computed
	// from the whole snapshot: ClusterIPs, and external IPs and LB VIPs that
	// are not already node addresses.
	Bind []netip.Addr
}

// BuildOptions configure BuildDesired.
type BuildOptions struct {
	// Scheduler is the IPVS scheduler; "" means "rr".
	Scheduler string
	// SchedulerFlags are added to every virtual server. With scheduler "mh"
	// and no flags, FlagSched2 (mh-port) is used, as upstream's FlagSourceHash.
	SchedulerFlags vs.Flags
	// NodePortIPs are the node addresses that get NodePort virtual servers
	// (see NodePortIPs); addresses of the other family are ignored.
	NodePortIPs []netip.Addr
	// LocalAddresses are the node's addresses outside kube-ipvs0; external
	// IPs and LB VIPs among them are not bound (upstream does the same).
	LocalAddresses []netip.Addr
	// Only restricts Servers to these service ports; nil means all.
	Only map[proxier.ServicePortName]struct{}
}

// BuildDesired is a pure function from a snapshot to the desired IPVS state.
func BuildDesired(snap *proxier.Snapshot, opts BuildOptions) *Desired {
	want6 := snap.Family == v1.IPv6Protocol
	bind := map[netip.Addr]struct{}{}
	for _, sp := range snap.All() {
		for _, a := range portBindAddrs(sp, opts.LocalAddresses, want6) {
			bind[a] = struct{}{}
		}
	}
	only := opts.Only
	if only == nil {
		only = make(map[proxier.ServicePortName]struct{}, snap.Len())
		for name := range snap.All() {
			only[name] = struct{}{}
		}
	}
	servers := desiredServers(snap, only, opts)
	if opts.Only == nil {
		maps.DeleteFunc(servers, func(_ proxier.ServicePortName, s []vs.DesiredServer) bool { return len(s) == 0 })
	}
	return &Desired{Servers: servers, Bind: sortedAddrs(bind)}
}

// desiredServers builds the virtual servers of the named service ports; a
// port that is gone or wants none maps to nothing. Its cost is that of the
// named ports only, whatever the size of the snapshot.
func desiredServers(snap *proxier.Snapshot, names map[proxier.ServicePortName]struct{}, opts BuildOptions) map[proxier.ServicePortName][]vs.DesiredServer {
	want6 := snap.Family == v1.IPv6Protocol
	out := make(map[proxier.ServicePortName][]vs.DesiredServer, len(names))
	for name := range names {
		var servers []vs.DesiredServer
		if sp, ok := snap.Service(name); ok {
			servers = serversFor(sp, snap.Endpoints(name), want6, opts)
		}
		out[name] = servers
	}
	return out
}

// portBindAddrs are the addresses of the family one service port needs on
// kube-ipvs0.
func portBindAddrs(sp *proxier.ServicePort, local []netip.Addr, want6 bool) []netip.Addr {
	var out []netip.Addr
	for _, a := range boundAddresses(sp, local) {
		if a.Is6() == want6 {
			out = append(out, a)
		}
	}
	return out
}

func boundAddresses(sp *proxier.ServicePort, local []netip.Addr) []netip.Addr {
	var out []netip.Addr
	if sp.ClusterIP.IsValid() {
		out = append(out, sp.ClusterIP)
	}
	for _, a := range slices.Concat(sp.ExternalIPs, sp.LoadBalancerVIPs) {
		if !slices.Contains(local, a) {
			out = append(out, a)
		}
	}
	return out
}

// serversFor builds one service port's virtual servers. Endpoints follow
// upstream's syncEndpoint: a Local policy uses the local endpoints, or the
// cluster endpoints when there is no local one (kubernetes/kubernetes#97081);
// EndpointSet.Cluster is empty when the port never uses cluster endpoints
// (ITP=Local and not externally accessible), as upstream's CategorizeEndpoints.
func serversFor(sp *proxier.ServicePort, eps *proxier.EndpointSet, want6 bool, opts BuildOptions) []vs.DesiredServer {
	proto, ok := vs.ProtocolFor(sp.Protocol)
	if !ok || sp.Port <= 0 || sp.Port > 65535 {
		return nil
	}
	if eps == nil {
		eps = &proxier.EndpointSet{}
	}
	base := baseServer(sp, proto, opts)
	internal := destinationsFor(eps, sp.InternalPolicyLocal, want6)
	external := destinationsFor(eps, sp.ExternalPolicyLocal, want6)
	var out []vs.DesiredServer
	add := func(addr netip.Addr, port int32, dests []vs.Destination) {
		if !addr.IsValid() || addr.Is6() != want6 || port <= 0 || port > 65535 {
			return
		}
		v := base
		v.Addr, v.Port = addr, uint16(port)
		if slices.ContainsFunc(out, func(o vs.DesiredServer) bool { return o.ServiceKey == v.ServiceKey }) {
			return
		}
		out = append(out, vs.DesiredServer{VirtualServer: v, Destinations: dests})
	}
	add(sp.ClusterIP, sp.Port, internal)
	for _, a := range slices.Concat(sp.ExternalIPs, sp.LoadBalancerVIPs) {
		add(a, sp.Port, external)
	}
	if sp.NodePort != 0 {
		for _, a := range opts.NodePortIPs {
			add(a, sp.NodePort, external)
		}
	}
	return out
}

func baseServer(sp *proxier.ServicePort, proto vs.Protocol, opts BuildOptions) vs.VirtualServer {
	v := vs.VirtualServer{ServiceKey: vs.ServiceKey{Protocol: proto}, Scheduler: opts.Scheduler, Flags: opts.SchedulerFlags}
	if v.Scheduler == "" {
		v.Scheduler = "rr"
	}
	if v.Scheduler == "mh" && v.Flags&(vs.FlagSched1|vs.FlagSched2|vs.FlagSched3) == 0 {
		v.Flags |= vs.FlagSched2
	}
	if sp.AffinityTimeoutSeconds > 0 {
		v.Flags |= vs.FlagPersistent
		v.Timeout = uint32(sp.AffinityTimeoutSeconds)
	}
	return v
}

func destinationsFor(eps *proxier.EndpointSet, local bool, want6 bool) []vs.Destination {
	src := eps.Cluster
	if local && len(eps.Local) > 0 {
		src = eps.Local
	}
	var out []vs.Destination
	for _, e := range src {
		if !e.IP.IsValid() || e.IP.Is6() != want6 || e.Port <= 0 || e.Port > 65535 {
			continue
		}
		d := vs.Destination{DestKey: vs.DestKey{Addr: e.IP, Port: uint16(e.Port)}, Weight: 1, Forwarding: vs.ForwardMasq}
		if !slices.ContainsFunc(out, func(o vs.Destination) bool { return o.DestKey == d.DestKey }) {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b vs.Destination) int { return a.DestKey.Compare(b.DestKey) })
	return out
}

func sortedAddrs(set map[netip.Addr]struct{}) []netip.Addr {
	out := make([]netip.Addr, 0, len(set))
	for a := range set {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// NodePortIPs picks the node addresses that get NodePort virtual servers:
// the local addresses of the family matching nodePortAddresses, never
// loopback or IPv6 link-local ones (upstream's address filter).
func NodePortIPs(local []netip.Addr, match netfilter.NodePortMatch, family v1.IPFamily) []netip.Addr {
	want6 := family == v1.IPv6Protocol
	var out []netip.Addr
	for _, a := range local {
		a = a.Unmap()
		if a.Is6() != want6 || a.IsLoopback() || (a.Is6() && a.IsLinkLocalUnicast()) || slices.Contains(out, a) {
			continue
		}
		if match.Contains(a) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
