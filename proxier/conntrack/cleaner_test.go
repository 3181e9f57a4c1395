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
	discovery "k8s.io/api/discovery/v1"

	dto "github.com/prometheus/client_model/go"

	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/metrics"
	pt "github.com/kproxy/kproxy/proxier/proxiertest"
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

// svc is Service ns/name with one port "p", UDP unless opts say otherwise,
// whose endpoints listen on 5353.
func svc(name, clusterIP string, port int32, opts ...pt.ServiceOption) *v1.Service {
	return svcTo(name, clusterIP, port, 5353, opts...)
}

func svcTo(name, clusterIP string, port, target int32, opts ...pt.ServiceOption) *v1.Service {
	return pt.Service("ns", name, append([]pt.ServiceOption{pt.ClusterIP(clusterIP), pt.PortTo("p", v1.ProtocolUDP, port, target)}, opts...)...)
}

// snapshot is the first (full) snapshot of a world holding svc (when not
// nil) and, when eps are given, its EndpointSlice.
func snapshot(t testing.TB, family v1.IPFamily, svc *v1.Service, eps ...discovery.Endpoint) *proxier.Snapshot {
	w := pt.NewWorld(t, pt.WorldOptions{Family: family})
	if svc != nil {
		w.Apply(svc)
	}
	if len(eps) > 0 {
		w.Apply(pt.SliceFor(svc, eps...))
	}
	return w.Snapshot()
}

func TestCleanIPv4(t *testing.T) {
	const client = "10.244.1.9:40000"
	lb := []pt.ServiceOption{pt.NodePort(30053), pt.ExternalIPs("192.0.2.10"), pt.LoadBalancer("198.51.100.10")}
	dns := svc("dns", "10.96.0.10", 53, lb...)
	tests := []struct {
		name   string
		snap   *proxier.Snapshot
		flow   *netlink.ConntrackFlow
		delete bool
	}{
		{"cluster IP to current endpoint kept", snapshot(t, v1.IPv4Protocol, dns, pt.Endpoint("10.244.0.5")),
			udp(client, "10.96.0.10:53", "10.244.0.5:5353"), false},
		{"cluster IP to removed endpoint deleted", snapshot(t, v1.IPv4Protocol, dns, pt.Endpoint("10.244.0.6")),
			udp(client, "10.96.0.10:53", "10.244.0.5:5353"), true},
		{"endpoint port changed deleted", snapshot(t, v1.IPv4Protocol, svcTo("dns", "10.96.0.10", 53, 5354, lb...), pt.Endpoint("10.244.0.5")),
			udp(client, "10.96.0.10:53", "10.244.0.5:5353"), true},
		{"entry never DNATed deleted once endpoints exist", snapshot(t, v1.IPv4Protocol, dns, pt.Endpoint("10.244.0.5")),
			udp(client, "10.96.0.10:53", "10.96.0.10:53"), true},
		{"zero endpoints deleted", snapshot(t, v1.IPv4Protocol, dns),
			udp(client, "10.96.0.10:53", "10.244.0.5:5353"), true},
		{"only not-serving endpoint deleted", snapshot(t, v1.IPv4Protocol, dns, pt.Endpoint("10.244.0.5", pt.NotReady())),
			udp(client, "10.96.0.10:53", "10.244.0.5:5353"), true},
		{"serving terminating endpoint kept", snapshot(t, v1.IPv4Protocol, dns, pt.Endpoint("10.244.0.5", pt.Terminating(true))),
			udp(client, "10.96.0.10:53", "10.244.0.5:5353"), false},
		{"external IP stale deleted", snapshot(t, v1.IPv4Protocol, dns, pt.Endpoint("10.244.0.6")),
			udp(client, "192.0.2.10:53", "10.244.0.5:5353"), true},
		{"external IP current kept", snapshot(t, v1.IPv4Protocol, dns, pt.Endpoint("10.244.0.5")),
			udp(client, "192.0.2.10:53", "10.244.0.5:5353"), false},
		{"LB VIP stale deleted", snapshot(t, v1.IPv4Protocol, dns, pt.Endpoint("10.244.0.6")),
			udp(client, "198.51.100.10:53", "10.244.0.5:5353"), true},
		{"NodePort stale deleted", snapshot(t, v1.IPv4Protocol, dns, pt.Endpoint("10.244.0.6")),
			udp("203.0.113.7:1234", "172.18.0.2:30053", "10.244.0.5:5353"), true},
		{"NodePort current kept", snapshot(t, v1.IPv4Protocol, dns, pt.Endpoint("10.244.0.5")),
			udp("203.0.113.7:1234", "172.18.0.2:30053", "10.244.0.5:5353"), false},
		{"other port on cluster IP kept", snapshot(t, v1.IPv4Protocol, dns),
			udp(client, "10.96.0.10:54", "10.244.0.5:5353"), false},
		{"TCP flow to UDP frontend kept", snapshot(t, v1.IPv4Protocol, dns),
			flow(unix.IPPROTO_TCP, client, "10.96.0.10:53", "10.244.0.5:5353"), false},
		{"TCP service ignored", snapshot(t, v1.IPv4Protocol, pt.Service("ns", "web", pt.ClusterIP("10.96.0.20"), pt.PortTo("p", v1.ProtocolTCP, 53, 5353))),
			udp(client, "10.96.0.20:53", "10.244.0.5:5353"), false},
		{"service absent from snapshot kept", snapshot(t, v1.IPv4Protocol, nil),
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
	snap := snapshot(t, v1.IPv6Protocol, svc("dns", "fd00:96::a", 53, pt.NodePort(30053)), pt.Endpoint("fd00:244::5"))
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
	n, err := c.Clean(snapshot(t, v1.IPv4Protocol, svc("dns", "10.96.0.10", 53)))
	if err != nil || n != 50 || h.dumps != 1 {
		t.Errorf("Clean = %d, %v with %d dumps; want 50, nil, 1 dump", n, err, h.dumps)
	}
	// No UDP service: no dump at all.
	h.dumps = 0
	if n, err := c.Clean(snapshot(t, v1.IPv4Protocol, pt.Service("ns", "web", pt.ClusterIP("10.96.0.20")))); err != nil || n != 0 || h.dumps != 0 {
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
	n, err := c.Clean(snapshot(t, v1.IPv4Protocol, svc("dns", "10.96.0.10", 53)))
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

	if _, err := c.Clean(snapshot(t, v1.IPv6Protocol, nil)); err == nil {
		t.Error("Clean accepted a snapshot of the other family")
	}
	if _, err := NewCleaner(Options{Family: "IPv5", Handle: h}); err == nil {
		t.Error("NewCleaner accepted an unknown family")
	}
}
