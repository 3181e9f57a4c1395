package conntrack

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	dto "github.com/prometheus/client_model/go"

	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/metrics"
)

// fakeHandle is a conntrack table in memory. Like the kernel path of
// *netlink.Handle, ConntrackDeleteFilters dumps once and deletes matches.
type fakeHandle struct {
	flows   []*netlink.ConntrackFlow
	dumps   int
	failErr error
}

func (h *fakeHandle) ConntrackTableList(_ netlink.ConntrackTableType, _ netlink.InetFamily) ([]*netlink.ConntrackFlow, error) {
	h.dumps++
	return slices.Clone(h.flows), nil
}

func (h *fakeHandle) ConntrackDeleteFilters(_ netlink.ConntrackTableType, _ netlink.InetFamily,
	filters ...netlink.CustomConntrackFilter) (uint, error) {
	h.dumps++
	var kept []*netlink.ConntrackFlow
	var n uint
	for _, f := range h.flows {
		if slices.ContainsFunc(filters, func(ft netlink.CustomConntrackFilter) bool { return ft.MatchConntrackFlow(f) }) {
			n++
			continue
		}
		kept = append(kept, f)
	}
	h.flows = kept
	return n, h.failErr
}

// flow builds a conntrack flow: client → origDst, answered by replySrc.
func flow(proto uint8, client, origDst, replySrc string) *netlink.ConntrackFlow {
	c, d, r := netip.MustParseAddrPort(client), netip.MustParseAddrPort(origDst), netip.MustParseAddrPort(replySrc)
	return &netlink.ConntrackFlow{
		Forward: netlink.IPTuple{Protocol: proto, SrcIP: ip(c.Addr()), SrcPort: c.Port(), DstIP: ip(d.Addr()), DstPort: d.Port()},
		Reverse: netlink.IPTuple{Protocol: proto, SrcIP: ip(r.Addr()), SrcPort: r.Port(), DstIP: ip(c.Addr()), DstPort: c.Port()},
	}
}

func ip(a netip.Addr) net.IP { return net.IP(a.AsSlice()) }

func udp(client, origDst, replySrc string) *netlink.ConntrackFlow {
	return flow(unix.IPPROTO_UDP, client, origDst, replySrc)
}

type svcOpt func(*proxier.ServicePort)

func withNodePort(p int32) svcOpt { return func(s *proxier.ServicePort) { s.NodePort = p } }
func withExternalIP(a string) svcOpt {
	return func(s *proxier.ServicePort) { s.ExternalIPs = append(s.ExternalIPs, netip.MustParseAddr(a)) }
}
func withLBVIP(a string) svcOpt {
	return func(s *proxier.ServicePort) { s.LoadBalancerVIPs = append(s.LoadBalancerVIPs, netip.MustParseAddr(a)) }
}
func withProtocol(p v1.Protocol) svcOpt { return func(s *proxier.ServicePort) { s.Protocol = p } }

type epOpt func(*proxier.Endpoint)

func notReady(e *proxier.Endpoint)           { e.Ready, e.Serving = false, false }
func servingTerminating(e *proxier.Endpoint) { e.Ready, e.Serving, e.Terminating = false, true, true }

func ep(addrPort string, opts ...epOpt) proxier.Endpoint {
	ap := netip.MustParseAddrPort(addrPort)
	e := proxier.Endpoint{IP: ap.Addr(), Port: int32(ap.Port()), Ready: true, Serving: true}
	for _, o := range opts {
		o(&e)
	}
	return e
}

type svcDef struct {
	name      string
	clusterIP string
	port      int32
	opts      []svcOpt
	endpoints []proxier.Endpoint
}

func svc(name, clusterIP string, port int32, opts ...svcOpt) svcDef {
	return svcDef{name: name, clusterIP: clusterIP, port: port, opts: opts}
}

func (d svcDef) with(eps ...proxier.Endpoint) svcDef { d.endpoints = eps; return d }

func snapshot(family v1.IPFamily, defs ...svcDef) *proxier.Snapshot {
	snap := &proxier.Snapshot{
		Family:    family,
		Services:  map[proxier.ServicePortName]*proxier.ServicePort{},
		Endpoints: map[proxier.ServicePortName]*proxier.EndpointSet{},
	}
	for _, d := range defs {
		name := proxier.ServicePortName{NamespacedName: types.NamespacedName{Namespace: "ns", Name: d.name}, Port: "p", Protocol: v1.ProtocolUDP}
		sp := &proxier.ServicePort{Name: name, ClusterIP: netip.MustParseAddr(d.clusterIP), Port: d.port, Protocol: v1.ProtocolUDP}
		for _, o := range d.opts {
			o(sp)
		}
		name.Protocol = sp.Protocol
		sp.Name = name
		snap.Services[name] = sp
		snap.Endpoints[name] = &proxier.EndpointSet{All: d.endpoints}
	}
	return snap
}

func TestCleanIPv4(t *testing.T) {
	const client = "10.244.1.9:40000"
	dns := svc("dns", "10.96.0.10", 53, withNodePort(30053), withExternalIP("192.0.2.10"), withLBVIP("198.51.100.10"))
	tests := []struct {
		name   string
		snap   *proxier.Snapshot
		flow   *netlink.ConntrackFlow
		delete bool
	}{
		{"cluster IP to current endpoint kept", snapshot(v1.IPv4Protocol, dns.with(ep("10.244.0.5:5353"))),
			udp(client, "10.96.0.10:53", "10.244.0.5:5353"), false},
		{"cluster IP to removed endpoint deleted", snapshot(v1.IPv4Protocol, dns.with(ep("10.244.0.6:5353"))),
			udp(client, "10.96.0.10:53", "10.244.0.5:5353"), true},
		{"endpoint port changed deleted", snapshot(v1.IPv4Protocol, dns.with(ep("10.244.0.5:5354"))),
			udp(client, "10.96.0.10:53", "10.244.0.5:5353"), true},
		{"entry never DNATed deleted once endpoints exist", snapshot(v1.IPv4Protocol, dns.with(ep("10.244.0.5:5353"))),
			udp(client, "10.96.0.10:53", "10.96.0.10:53"), true},
		{"zero endpoints deleted", snapshot(v1.IPv4Protocol, dns),
			udp(client, "10.96.0.10:53", "10.244.0.5:5353"), true},
		{"only not-serving endpoint deleted", snapshot(v1.IPv4Protocol, dns.with(ep("10.244.0.5:5353", notReady))),
			udp(client, "10.96.0.10:53", "10.244.0.5:5353"), true},
		{"serving terminating endpoint kept", snapshot(v1.IPv4Protocol, dns.with(ep("10.244.0.5:5353", servingTerminating))),
			udp(client, "10.96.0.10:53", "10.244.0.5:5353"), false},
		{"external IP stale deleted", snapshot(v1.IPv4Protocol, dns.with(ep("10.244.0.6:5353"))),
			udp(client, "192.0.2.10:53", "10.244.0.5:5353"), true},
		{"external IP current kept", snapshot(v1.IPv4Protocol, dns.with(ep("10.244.0.5:5353"))),
			udp(client, "192.0.2.10:53", "10.244.0.5:5353"), false},
		{"LB VIP stale deleted", snapshot(v1.IPv4Protocol, dns.with(ep("10.244.0.6:5353"))),
			udp(client, "198.51.100.10:53", "10.244.0.5:5353"), true},
		{"NodePort stale deleted", snapshot(v1.IPv4Protocol, dns.with(ep("10.244.0.6:5353"))),
			udp("203.0.113.7:1234", "172.18.0.2:30053", "10.244.0.5:5353"), true},
		{"NodePort current kept", snapshot(v1.IPv4Protocol, dns.with(ep("10.244.0.5:5353"))),
			udp("203.0.113.7:1234", "172.18.0.2:30053", "10.244.0.5:5353"), false},
		{"other port on cluster IP kept", snapshot(v1.IPv4Protocol, dns),
			udp(client, "10.96.0.10:54", "10.244.0.5:5353"), false},
		{"TCP flow to UDP frontend kept", snapshot(v1.IPv4Protocol, dns),
			flow(unix.IPPROTO_TCP, client, "10.96.0.10:53", "10.244.0.5:5353"), false},
		{"TCP service ignored", snapshot(v1.IPv4Protocol, svc("web", "10.96.0.20", 53, withProtocol(v1.ProtocolTCP))),
			udp(client, "10.96.0.20:53", "10.244.0.5:5353"), false},
		{"service absent from snapshot kept", snapshot(v1.IPv4Protocol),
			udp(client, "10.96.0.10:53", "10.244.0.5:5353"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &fakeHandle{flows: []*netlink.ConntrackFlow{tt.flow}}
			c, err := NewCleaner(Options{Family: v1.IPv4Protocol, Handle: h})
			if err != nil {
				t.Fatal(err)
			}
			stale, err := c.Stale(tt.snap)
			if err != nil || (len(stale) == 1) != tt.delete {
				t.Errorf("Stale = %d flows, %v; want delete=%v", len(stale), err, tt.delete)
			}
			n, err := c.Clean(tt.snap)
			if err != nil {
				t.Fatal(err)
			}
			if (n == 1) != tt.delete || (len(h.flows) == 0) != tt.delete {
				t.Errorf("deleted %d, %d left; want delete=%v", n, len(h.flows), tt.delete)
			}
		})
	}
}

func TestCleanIPv6(t *testing.T) {
	snap := snapshot(v1.IPv6Protocol, svc("dns", "fd00:96::a", 53, withNodePort(30053)).with(ep("[fd00:244::5]:5353")))
	h := &fakeHandle{flows: []*netlink.ConntrackFlow{
		udp("[fd00:244:1::9]:40000", "[fd00:96::a]:53", "[fd00:244::5]:5353"),  // current
		udp("[fd00:244:1::9]:40001", "[fd00:96::a]:53", "[fd00:244::6]:5353"),  // stale
		udp("[2001:db8::7]:1234", "[2001:db8::2]:30053", "[fd00:244::6]:5353"), // stale NodePort
	}}
	c, err := NewCleaner(Options{Family: v1.IPv6Protocol, Handle: h})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c.Clean(snap); err != nil || n != 2 {
		t.Fatalf("Clean = %d, %v; want 2, nil", n, err)
	}
	if len(h.flows) != 1 || h.flows[0].Forward.SrcPort != 40000 {
		t.Errorf("remaining flows %v, want only the current one", h.flows)
	}
}

func TestCleanBatchesAndSkips(t *testing.T) {
	var flows []*netlink.ConntrackFlow
	for i := range 50 {
		flows = append(flows, udp("10.244.1.9:"+strconv.Itoa(40000+i), "10.96.0.10:53", "10.244.0.5:5353"))
	}
	h := &fakeHandle{flows: flows}
	c, _ := NewCleaner(Options{Family: v1.IPv4Protocol, Handle: h})
	n, err := c.Clean(snapshot(v1.IPv4Protocol, svc("dns", "10.96.0.10", 53)))
	if err != nil || n != 50 || h.dumps != 1 {
		t.Errorf("Clean = %d, %v with %d dumps; want 50, nil, 1 dump", n, err, h.dumps)
	}
	// No UDP service: no dump at all.
	h.dumps = 0
	if n, err := c.Clean(snapshot(v1.IPv4Protocol, svc("web", "10.96.0.20", 80, withProtocol(v1.ProtocolTCP)))); err != nil || n != 0 || h.dumps != 0 {
		t.Errorf("Clean without UDP services = %d, %v with %d dumps; want 0, nil, 0", n, err, h.dumps)
	}
}

func itoa(i int) string {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(i)).String()[len("0.0.0.0:"):]
}

func TestCleanErrorsAndMetrics(t *testing.T) {
	m := metrics.New()
	h := &fakeHandle{
		flows:   []*netlink.ConntrackFlow{udp("10.244.1.9:40000", "10.96.0.10:53", "10.244.0.5:5353")},
		failErr: netlink.ErrDumpInterrupted,
	}
	c, _ := NewCleaner(Options{Family: v1.IPv4Protocol, Handle: h, Metrics: m})
	n, err := c.Clean(snapshot(v1.IPv4Protocol, svc("dns", "10.96.0.10", 53)))
	if n != 1 || !errors.Is(err, netlink.ErrDumpInterrupted) {
		t.Errorf("Clean = %d, %v; want 1 and a wrapped ErrDumpInterrupted", n, err)
	}
	var out dto.Metric
	_ = m.ConntrackDeletedEntriesTotal.WithLabelValues("IPv4").Write(&out)
	if out.GetCounter().GetValue() != 1 {
		t.Errorf("deleted entries metric = %v, want 1", out.GetCounter().GetValue())
	}
	hist, _ := m.ConntrackReconcileLatency.GetMetricWithLabelValues("IPv4")
	out.Reset()
	_ = hist.(interface{ Write(*dto.Metric) error }).Write(&out)
	if out.GetHistogram().GetSampleCount() != 1 {
		t.Errorf("duration samples = %d, want 1", out.GetHistogram().GetSampleCount())
	}

	if _, err := c.Clean(snapshot(v1.IPv6Protocol)); err == nil {
		t.Error("Clean accepted a snapshot of the other family")
	}
	if _, err := NewCleaner(Options{Family: "IPv5", Handle: h}); err == nil {
		t.Error("NewCleaner accepted an unknown family")
	}
}
