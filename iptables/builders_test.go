package iptables

import (
	"fmt"
	"net/netip"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"

	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
	pt "github.com/kproxy/kproxy/proxier/proxiertest"
)

// Test fixtures: Services and endpoints are API objects made by proxiertest
// (pt.Service("ns1", "svc1", pt.ClusterIP("172.30.0.41"), pt.NodePort(3001))),
// and snapshots come from a pt.World, so what a renderer test sees is what
// the tracker makes of them in production. The default port is upstream's
// "p80" (TCP 80), which the chain names below are hashed from.

// newWorld is an IPv4 world on node pt.NodeName with node IP 192.168.0.2, as testOptions assume.
func newWorld(t testing.TB) *pt.World { return pt.NewWorld(t, pt.WorldOptions{}) }

// local places an endpoint on the world's node.
func local() pt.EndpointOption { return pt.OnNode(pt.NodeName) }

// spn is the ServicePortName of a Service's "p80" TCP port.
func spn(ns, svc string) proxier.ServicePortName { return pt.Name(ns, svc, "p80") }

// scaleWorld is n NodePort services (scaleService) with k endpoints each
// (scaleEndpoints), applied but not yet snapshotted.
func scaleWorld(t testing.TB, n, k int) *pt.World {
	w := newWorld(t)
	for i := range n {
		w.ApplyService(scaleService(i), scaleEndpoints(i, k)...)
	}
	return w
}

// scaleService is Service ns<i%100>/svc<i>: ClusterIP 172.30.x.y, port "p80"
// 80 → 8080 and a node port.
func scaleService(i int) *v1.Service {
	ip := netip.AddrFrom4([4]byte{172, 30, byte(i >> 8), byte(i)})
	return pt.Service(fmt.Sprintf("ns%d", i%100), fmt.Sprintf("svc%d", i), pt.ClusterIP(ip.String()),
		pt.PortTo("p80", v1.ProtocolTCP, 80, 8080), pt.NodePort(int32(30000+i%2000)))
}

// scaleEndpoints are k ready endpoints of scaleService(i).
func scaleEndpoints(i, k int) []discovery.Endpoint {
	eps := make([]discovery.Endpoint, k)
	for j := range k {
		eps[j] = pt.Endpoint(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), byte(j + 1)}).String())
	}
	return eps
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

func addrs(ips ...string) []netip.Addr {
	out := make([]netip.Addr, len(ips))
	for i, ip := range ips {
		out[i] = netip.MustParseAddr(ip)
	}
	return out
}
