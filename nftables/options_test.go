package nftables

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier/netfilter"
	. "github.com/kproxy/kproxy/proxier/proxiertest"
)

// Table variants upstream's setupNFTables writes for other options.
func TestTableOptions(t *testing.T) {
	tests := []struct {
		name      string
		mod       func(*Options)
		want, not []string
	}{
		{"nodePortAddresses matching every address", func(o *Options) { o.NodePortsAll, o.NodePortIPs = true, nil },
			[]string{"add rule ip kube-proxy services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports",
				"add rule ip kube-proxy nodeport-endpoints-check ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports"},
			[]string{"nodeport-ips"}},
		{"masqueradeAll", func(o *Options) { o.MasqueradeAll = true },
			[]string{`add rule ip kube-proxy services ip daddr @cluster-ips mark set mark or 0x4000 comment "masquerade all clusterIP traffic"`},
			[]string{"masquerade clusterIP traffic from outside cluster"}},
		{"no local detector", func(o *Options) { o.LocalDetector = netfilter.LocalDetector{} },
			nil, []string{"masquerade clusterIP traffic from outside cluster", "short-circuit pod traffic"}},
		{"bridge detector", func(o *Options) {
			o.LocalDetector = netfilter.LocalDetector{IfLocal: []string{"-i", "cbr0"}, IfNotLocal: []string{"!", "-i", "cbr0"}}
		}, []string{`services ip daddr @cluster-ips iifname != cbr0 mark set mark or 0x4000`,
			`external-42NFTM6N-ns2/svc2/tcp/p80 iifname cbr0 goto service-42NFTM6N-ns2/svc2/tcp/p80 comment "short-circuit pod traffic"`}, nil},
		{"loopback node port addresses are never in nodeport-ips", func(o *Options) {
			o.NodePortIPs = append(o.NodePortIPs, mustAddr("127.0.0.1"))
		}, []string{"add element ip kube-proxy nodeport-ips { 192.168.0.2 }"}, []string{"nodeport-ips { 127.0.0.1 }"}},
		{"no service CIDRs", func(o *Options) { o.ServiceCIDRs = nil }, nil, []string{"Drop traffic to unallocated ClusterIPs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t, v1.IPv4Protocol, tt.mod)
			applyOverallIPv4(e.world)
			e.sync()
			dump := e.nft.Dump()
			for _, w := range tt.want {
				if !strings.Contains(dump, w) {
					t.Errorf("table lacks %q", w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(dump, n) {
					t.Errorf("table has %q", n)
				}
			}
		})
	}
}

// Service variants: traffic policies without local endpoints, firewall
// sources, protocols.
func TestServiceVariants(t *testing.T) {
	lb := func(opts ...ServiceOption) *v1.Service {
		return Service("ns", "lb", append([]ServiceOption{ClusterIP("172.30.1.1"), Port("p80", v1.ProtocolTCP, 80),
			NodePort(30080), LoadBalancer("5.6.7.8")}, opts...)...)
	}
	n := namesOf(Name("ns", "lb", "p80"))
	ext := n.external
	tests := []struct {
		name string
		svc  *v1.Service
		eps  []string // endpoint IPs; a "local:" prefix puts it on this node
		want []string
	}{
		{"ITP Local without local endpoints drops ClusterIP traffic",
			Service("ns", "itp", ClusterIP("172.30.1.2"), InternalLocal()), []string{"10.1.0.1"},
			[]string{`add element ip kube-proxy no-endpoint-services { 172.30.1.2 . tcp . 80 comment "ns/itp:p80" : drop }`}},
		{"ETP Local without local endpoints: external chain without a policy jump, drops",
			lb(ExternalLocal(), HealthCheckNodePort(31000)), []string{"10.1.0.1"},
			[]string{"add element ip kube-proxy service-nodeports { tcp . 30080 : goto " + ext + " }",
				`add element ip kube-proxy no-endpoint-nodeports { tcp . 30080 comment "ns/lb:p80" : drop }`,
				"add rule ip kube-proxy " + ext + " fib saddr type local goto " + n.cluster + ` comment "short-circuit local traffic"`}},
		{"ETP Local with a local endpoint goes to the local chain",
			lb(ExternalLocal(), HealthCheckNodePort(31000)), []string{"10.1.0.1", "local:10.1.0.2"},
			[]string{"add rule ip kube-proxy " + ext + " goto " + n.local,
				"add rule ip kube-proxy " + n.local + " meta l4proto tcp dnat to 10.1.0.2:80"}},
		{"source ranges holding the node IP also allow the LB IPs",
			lb(SourceRanges("192.168.0.0/16", "203.0.113.0/25")), []string{"10.1.0.1"},
			[]string{"add rule ip kube-proxy " + n.firewall + " ip saddr != { 192.168.0.0/16 , 203.0.113.0/25 , 5.6.7.8 } drop"}},
		{"only unparseable source ranges: the firewall drops everything (kproxy fails closed)",
			lb(SourceRanges("not-a-cidr")), []string{"10.1.0.1"},
			[]string{"add rule ip kube-proxy " + n.firewall + " drop",
				"add element ip kube-proxy firewall-ips { 5.6.7.8 . tcp . 80 : goto " + n.firewall + " }"}},
		{"UDP and SCTP ports", Service("ns", "multi", ClusterIP("172.30.1.3"), Port("dns", v1.ProtocolUDP, 53),
			Port("sctp", v1.ProtocolSCTP, 9999)), []string{"10.1.0.1"},
			[]string{"add element ip kube-proxy service-ips { 172.30.1.3 . udp . 53 : goto service-",
				"meta l4proto udp dnat to 10.1.0.1:53", "meta l4proto sctp dnat to 10.1.0.1:9999"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t, v1.IPv4Protocol)
			var eps []Endpoint_
			for _, ip := range tt.eps {
				node := "other-node"
				if s, ok := strings.CutPrefix(ip, "local:"); ok {
					ip, node = s, testNodeName
				}
				eps = append(eps, Endpoint(ip, OnNode(node)))
			}
			e.world.Apply(tt.svc, SliceFor(tt.svc, eps...))
			e.sync()
			dump := e.nft.Dump()
			for _, w := range tt.want {
				if !strings.Contains(dump, w) {
					t.Errorf("table lacks %q\n%s", w, dump)
				}
			}
		})
	}
}

// Service CIDRs learnt later are written by the next full sync, as upstream.
func TestSetServiceCIDRs(t *testing.T) {
	e := newTestEnv(t, v1.IPv4Protocol, func(o *Options) { o.ServiceCIDRs = nil })
	applyOverallIPv4(e.world)
	e.sync()
	const rule = `add rule ip kube-proxy cluster-ips-check ip daddr { 10.96.0.0/12,10.100.0.0/16 } drop comment "Drop traffic to unallocated ClusterIPs"`
	cidrs := []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12"), netip.MustParsePrefix("fd00::/108"),
		netip.MustParsePrefix("10.100.0.0/16")}
	if !e.p.SetServiceCIDRs(cidrs) || e.p.SetServiceCIDRs(cidrs) {
		t.Fatal("SetServiceCIDRs: want changed once, then unchanged")
	}
	if e.p.SetServiceCIDRs(cidrs[1:2]) != true {
		t.Fatal("dropping this family's CIDRs is a change")
	}
	e.p.SetServiceCIDRs(cidrs)
	e.world.Apply(SliceFor(Service("ns6", "svc6"), Endpoint("10.180.0.9")))
	e.sync()
	if strings.Contains(e.nft.Dump(), "unallocated") {
		t.Fatal("a partial sync rewrote the fixed chains")
	}
	if _, err := e.p.Sync(context.Background(), e.world.Full()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.nft.Dump(), rule) {
		t.Errorf("full sync lacks %q", rule)
	}
}
