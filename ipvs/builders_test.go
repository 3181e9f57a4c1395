package ipvs_test

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"

	"github.com/kproxy/kproxy/ipvs/ipset"
	"github.com/kproxy/kproxy/ipvs/vs"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
	pt "github.com/kproxy/kproxy/proxier/proxiertest"
)

// Test fixtures: Services and endpoints are API objects made by proxiertest,
// and snapshots come from a pt.World (through validation and the real
// Tracker), so endpoint categorization is production's.

// svc is Service ns/<name> with this cluster IP and one port "p", TCP 80 →
// 8080, which options about "the port" (pt.NodePort) change; a pt.PortTo
// option adds a second one.
func svc(name, clusterIP string, opts ...pt.ServiceOption) *v1.Service {
	return svcPort(name, clusterIP, v1.ProtocolTCP, 80, 8080, opts...)
}

// svcPort is svc with another protocol and port numbers.
func svcPort(name, clusterIP string, proto v1.Protocol, port, target int32, opts ...pt.ServiceOption) *v1.Service {
	return pt.Service("ns", name, append([]pt.ServiceOption{pt.ClusterIP(clusterIP), pt.PortTo("p", proto, port, target)}, opts...)...)
}

// ep is a ready endpoint (on no node); local() puts it on this node.
func ep(ip string, opts ...pt.EndpointOption) discovery.Endpoint { return pt.Endpoint(ip, opts...) }

func local() pt.EndpointOption { return pt.OnNode(pt.NodeName) }

// lbLocal makes a Service a LoadBalancer with this VIP, externalTrafficPolicy
// Local and health-check node port hc (the API server allocates one).
func lbLocal(vip string, hc int32) pt.ServiceOption {
	return func(s *v1.Service) {
		for _, o := range []pt.ServiceOption{pt.LoadBalancer(vip), pt.ExternalLocal(), pt.HealthCheckNodePort(hc)} {
			o(s)
		}
	}
}

// entry is a Service and the endpoints of its one EndpointSlice.
type entry struct {
	svc *v1.Service
	eps []discovery.Endpoint
}

func e(s *v1.Service, eps ...discovery.Endpoint) entry { return entry{s, eps} }

// model is the World a test syncs from, holding entries.
type model struct {
	*pt.World
	live map[string]entry
}

// newModel returns an empty world of family (IPv4 when empty) on node
// nodeIP (fd00::10 for IPv6).
func newModel(t testing.TB, family v1.IPFamily) *model {
	ips := []string{nodeIP}
	if family == v1.IPv6Protocol {
		ips = []string{"fd00::10"}
	}
	return &model{World: pt.NewWorld(t, pt.WorldOptions{Family: family, NodeIPs: ips}), live: map[string]entry{}}
}

// set makes the world hold exactly entries: it applies those that are new
// or differ and deletes the others, as the API server's events would.
func (m *model) set(entries ...entry) *model {
	keep := map[string]bool{}
	for _, en := range entries {
		keep[en.svc.Name] = true
		if old, ok := m.live[en.svc.Name]; !ok || !reflect.DeepEqual(old, en) {
			m.ApplyService(en.svc, en.eps...)
			m.live[en.svc.Name] = en
		}
	}
	for name, en := range m.live {
		if !keep[name] {
			m.Delete(en.svc, pt.SliceFor(en.svc))
			delete(m.live, name)
		}
	}
	return m
}

// next sets entries and returns the next snapshot: full the first time,
// then partial, naming what changed, as the Tracker's.
func (m *model) next(entries ...entry) *proxier.Snapshot { return m.set(entries...).Snapshot() }

// full sets entries and returns the next snapshot marked full.
func (m *model) full(entries ...entry) *proxier.Snapshot { return m.set(entries...).Full() }

// snapshot is the full snapshot of a new world holding entries, of the
// first one's family.
func snapshot(t testing.TB, entries ...entry) *proxier.Snapshot {
	family := v1.IPv4Protocol
	if len(entries) > 0 && strings.Contains(entries[0].svc.Spec.ClusterIP, ":") {
		family = v1.IPv6Protocol
	}
	return newModel(t, family).next(entries...)
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

// portName is the ServicePortName of port "p" (TCP) of Service ns/<name>.
func portName(name string) proxier.ServicePortName { return pt.Name("ns", name, "p") }

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
