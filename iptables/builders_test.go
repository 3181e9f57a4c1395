package iptables

import (
	"net/netip"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
)

// Test builders: svc("ns1", "svc1", clusterIP("172.30.0.41"), withNodePort(3001))
// and eps(ep("10.180.0.1", 80), ...).

type svcOpt func(*proxier.ServicePort)

func svc(ns, name string, opts ...svcOpt) *proxier.ServicePort {
	sp := &proxier.ServicePort{
		Name:     proxier.ServicePortName{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}, Port: "p80", Protocol: v1.ProtocolTCP},
		Port:     80,
		Protocol: v1.ProtocolTCP,
	}
	for _, o := range opts {
		o(sp)
	}
	return sp
}

func clusterIP(ip string) svcOpt {
	return func(sp *proxier.ServicePort) { sp.ClusterIP = netip.MustParseAddr(ip) }
}

func withPortName(name string) svcOpt { return func(sp *proxier.ServicePort) { sp.Name.Port = name } }

func withProtocol(p v1.Protocol) svcOpt {
	return func(sp *proxier.ServicePort) { sp.Protocol, sp.Name.Protocol = p, p }
}

func withNodePort(n int32) svcOpt { return func(sp *proxier.ServicePort) { sp.NodePort = n } }

func withExternalIPs(ips ...string) svcOpt {
	return func(sp *proxier.ServicePort) { sp.ExternalIPs = addrs(ips...) }
}

func withLB(ips ...string) svcOpt {
	return func(sp *proxier.ServicePort) { sp.LoadBalancerVIPs = addrs(ips...) }
}

func withSourceRanges(cidrs ...string) svcOpt {
	return func(sp *proxier.ServicePort) {
		for _, c := range cidrs {
			sp.LoadBalancerSourceRanges = append(sp.LoadBalancerSourceRanges, netip.MustParsePrefix(c))
		}
	}
}

func withHealthCheckNodePort(n int32) svcOpt {
	return func(sp *proxier.ServicePort) { sp.HealthCheckNodePort = n }
}

func withETPLocal() svcOpt { return func(sp *proxier.ServicePort) { sp.ExternalPolicyLocal = true } }
func withITPLocal() svcOpt { return func(sp *proxier.ServicePort) { sp.InternalPolicyLocal = true } }

func withAffinity(seconds int32) svcOpt {
	return func(sp *proxier.ServicePort) { sp.AffinityTimeoutSeconds = seconds }
}

func addrs(ips ...string) []netip.Addr {
	out := make([]netip.Addr, len(ips))
	for i, ip := range ips {
		out[i] = netip.MustParseAddr(ip)
	}
	return out
}

type epOpt func(*proxier.Endpoint)

func ep(ip string, port int32, opts ...epOpt) proxier.Endpoint {
	e := proxier.Endpoint{IP: netip.MustParseAddr(ip), Port: port, Ready: true, Serving: true}
	for _, o := range opts {
		o(&e)
	}
	return e
}

func local() epOpt { return func(e *proxier.Endpoint) { e.IsLocal = true } }

func terminatingServing() epOpt {
	return func(e *proxier.Endpoint) { e.Ready, e.Serving, e.Terminating = false, true, true }
}

// eps categorizes endpoints the simple way the tracker does without topology:
// Cluster = ready (else serving-terminating), Local = local ready (else local
// serving-terminating).
func eps(all ...proxier.Endpoint) *proxier.EndpointSet {
	s := &proxier.EndpointSet{All: all}
	pick := func(localOnly bool) []proxier.Endpoint {
		var ready, term []proxier.Endpoint
		for _, e := range all {
			if localOnly && !e.IsLocal {
				continue
			}
			if e.Ready {
				ready = append(ready, e)
			} else if e.Serving && e.Terminating {
				term = append(term, e)
			}
		}
		if len(ready) > 0 {
			return ready
		}
		return term
	}
	s.Cluster, s.Local = pick(false), pick(true)
	s.HasAny = len(s.Cluster) > 0
	return s
}

// world builds a snapshot from service/endpoint pairs.
type world struct{ snap *proxier.Snapshot }

func newWorld() *world {
	return &world{snap: &proxier.Snapshot{
		Family:    v1.IPv4Protocol,
		Services:  map[proxier.ServicePortName]*proxier.ServicePort{},
		Endpoints: map[proxier.ServicePortName]*proxier.EndpointSet{},
		Changed:   map[proxier.ServicePortName]struct{}{},
		Full:      true,
	}}
}

func (w *world) add(sp *proxier.ServicePort, set *proxier.EndpointSet) *world {
	w.snap.Services[sp.Name] = sp
	if set != nil {
		w.snap.Endpoints[sp.Name] = set
	}
	w.snap.Changed[sp.Name] = struct{}{}
	return w
}

// testOptions are upstream's fake proxier settings (section 9.10).
func testOptions() RenderOptions {
	return RenderOptions{
		Family:         v1.IPv4Protocol,
		MasqueradeMark: "0x4000",
		LocalDetector:  netfilter.LocalDetector{IfLocal: []string{"-s", "10.0.0.0/8"}, IfNotLocal: []string{"!", "-s", "10.0.0.0/8"}},
		NodeIPs:        addrs("192.168.0.2"),
	}
}

type proxierName = proxier.ServicePortName

func (w *world) name(ns, name string) proxier.ServicePortName {
	for n := range w.snap.Services {
		if n.Namespace == ns && n.Name == name {
			return n
		}
	}
	panic("no service " + ns + "/" + name)
}

type (
	endpointAlias    = proxier.Endpoint
	endpointSetAlias = proxier.EndpointSet
)
