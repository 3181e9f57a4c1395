package ipvs_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kproxy/kproxy/ipvs/ipset"
	"github.com/kproxy/kproxy/ipvs/vs"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
)

type svcOpt func(*proxier.ServicePort, *proxier.EndpointSet)

// svc builds a TCP port 80 service port with a ClusterIP and its endpoints.
func svc(name, clusterIP string, opts ...svcOpt) (*proxier.ServicePort, *proxier.EndpointSet) {
	sp := &proxier.ServicePort{
		Name:      proxier.ServicePortName{NamespacedName: types.NamespacedName{Namespace: "ns", Name: name}, Port: "p", Protocol: v1.ProtocolTCP},
		ClusterIP: addr(clusterIP), Port: 80, Protocol: v1.ProtocolTCP,
	}
	set := &proxier.EndpointSet{}
	for _, o := range opts {
		o(sp, set)
	}
	return sp, set
}

func addr(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	return netip.MustParseAddr(s)
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, addr(s))
	}
	return out
}

func withProtocol(p v1.Protocol) svcOpt {
	return func(sp *proxier.ServicePort, _ *proxier.EndpointSet) { sp.Protocol, sp.Name.Protocol = p, p }
}

func withPort(port int32) svcOpt {
	return func(sp *proxier.ServicePort, _ *proxier.EndpointSet) { sp.Port = port }
}

func withNodePort(port int32) svcOpt {
	return func(sp *proxier.ServicePort, _ *proxier.EndpointSet) { sp.NodePort = port }
}

func withExternalIPs(ips ...string) svcOpt {
	return func(sp *proxier.ServicePort, _ *proxier.EndpointSet) { sp.ExternalIPs = addrs(ips...) }
}

func withLB(ips ...string) svcOpt {
	return func(sp *proxier.ServicePort, _ *proxier.EndpointSet) { sp.LoadBalancerVIPs = addrs(ips...) }
}

func withETPLocal() svcOpt {
	return func(sp *proxier.ServicePort, _ *proxier.EndpointSet) { sp.ExternalPolicyLocal = true }
}

func withITPLocal() svcOpt {
	return func(sp *proxier.ServicePort, _ *proxier.EndpointSet) { sp.InternalPolicyLocal = true }
}

func withAffinity(seconds int32) svcOpt {
	return func(sp *proxier.ServicePort, _ *proxier.EndpointSet) { sp.AffinityTimeoutSeconds = seconds }
}

// withEndpoints adds ready endpoints "ip:port"; a "local:" prefix marks
// local ones. Cluster and Local are filled as proxier's categorization
// does (Cluster only when the port uses cluster endpoints): apply it last.
func withEndpoints(eps ...string) svcOpt {
	return func(sp *proxier.ServicePort, set *proxier.EndpointSet) {
		for _, e := range eps {
			local := strings.HasPrefix(e, "local:")
			ap := netip.MustParseAddrPort(strings.TrimPrefix(e, "local:"))
			ep := proxier.Endpoint{IP: ap.Addr(), Port: int32(ap.Port()), Ready: true, Serving: true, IsLocal: local}
			set.All = append(set.All, ep)
			set.HasAny = true
			if sp.UsesClusterEndpoints() {
				set.Cluster = append(set.Cluster, ep)
			}
			if local && sp.UsesLocalEndpoints() {
				set.Local = append(set.Local, ep)
			}
		}
	}
}

type entry struct {
	sp  *proxier.ServicePort
	eps *proxier.EndpointSet
}

func e(sp *proxier.ServicePort, eps *proxier.EndpointSet) entry { return entry{sp, eps} }

// snapshot builds a full IPv4 snapshot (family from the first ClusterIP).
func snapshot(entries ...entry) *proxier.Snapshot {
	s := &proxier.Snapshot{Family: v1.IPv4Protocol, Full: true,
		Services: map[proxier.ServicePortName]*proxier.ServicePort{}, Endpoints: map[proxier.ServicePortName]*proxier.EndpointSet{},
		Changed: map[proxier.ServicePortName]struct{}{}}
	for i, en := range entries {
		if i == 0 && en.sp.ClusterIP.Is6() {
			s.Family = v1.IPv6Protocol
		}
		s.Services[en.sp.Name] = en.sp
		s.Endpoints[en.sp.Name] = en.eps
		s.Changed[en.sp.Name] = struct{}{}
	}
	return s
}

// partial returns a copy of s that is not full and reports the TCP ports
// "p" of the named services as changed.
func partial(s *proxier.Snapshot, names ...string) *proxier.Snapshot {
	var ports []proxier.ServicePortName
	for _, n := range names {
		ports = append(ports, portName(n))
	}
	return partialPorts(s, ports...)
}

// partialPorts returns a copy of s that is not full and reports ports as changed.
func partialPorts(s *proxier.Snapshot, ports ...proxier.ServicePortName) *proxier.Snapshot {
	c := *s
	c.Full = false
	c.Changed = map[proxier.ServicePortName]struct{}{}
	for _, n := range ports {
		c.Changed[n] = struct{}{}
	}
	return &c
}

func portName(name string) proxier.ServicePortName {
	return proxier.ServicePortName{NamespacedName: types.NamespacedName{Namespace: "ns", Name: name}, Port: "p", Protocol: v1.ProtocolTCP}
}

// renderServers prints virtual servers in ipvsadm-like lines, for comparisons.
func renderServers(servers []vs.DesiredServer) []string {
	var out []string
	for _, s := range servers {
		out = append(out, renderServer(s.VirtualServer, s.Destinations))
	}
	return out
}

func renderServer(v vs.VirtualServer, dests []vs.Destination) string {
	line := fmt.Sprintf("%s %s", v.ServiceKey, v.Scheduler)
	if v.Flags != 0 {
		line += fmt.Sprintf(" flags=%#x", uint32(v.Flags))
	}
	if v.Timeout != 0 {
		line += fmt.Sprintf(" timeout=%d", v.Timeout)
	}
	for _, d := range dests {
		line += fmt.Sprintf(" -> %s w%d", d.DestKey, d.Weight)
		if d.Forwarding != vs.ForwardMasq {
			line += fmt.Sprintf(" fwd%d", d.Forwarding)
		}
	}
	return line
}

// kernelState renders a Handle's whole table, sorted.
func kernelState(h vs.Handle) ([]string, error) {
	servers, err := h.ListVirtualServers()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range servers {
		ds, err := h.ListDestinations(v.ServiceKey)
		if err != nil {
			return nil, err
		}
		slices.SortFunc(ds, func(a, b vs.Destination) int { return strings.Compare(a.DestKey.String(), b.DestKey.String()) })
		out = append(out, renderServer(v, ds))
	}
	slices.Sort(out)
	return out, nil
}

const mark = "0x00004000"

func clusterCIDRDetector() netfilter.LocalDetector {
	return netfilter.LocalDetector{IfLocal: []string{"-s", "10.0.0.0/8"}, IfNotLocal: []string{"!", "-s", "10.0.0.0/8"}}
}

func vsKey(proto vs.Protocol, a string, port uint16) vs.ServiceKey {
	return vs.ServiceKey{Addr: addr(a), Port: port, Protocol: proto}
}

func dest(a string, port uint16, weight int) vs.Destination {
	return vs.Destination{DestKey: vs.DestKey{Addr: addr(a), Port: port}, Weight: weight}
}

// assertMembers checks one set of the fake (which must exist) by its members.
func assertMembers(t *testing.T, f *ipset.Fake, set string, want ...string) {
	t.Helper()
	if got, ok := f.Members(set); ok || len(want) > 0 {
		wantStrings(t, set, got, want)
	} else {
		t.Errorf("set %s missing", set)
	}
}
