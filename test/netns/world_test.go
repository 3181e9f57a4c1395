package netns_test

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/kproxy/kproxy/test/netns"
	"github.com/kproxy/kproxy/test/probe"
)

const probeTimeout = 2 * time.Second

// defaultPorts are what every test pod serves (SCTP is tested separately:
// this kernel may lack it).
var defaultPorts = netns.ServerPorts{TCP: []int{8080, 80}, UDP: []int{5353}}

// servedWorld builds a world and starts a pod server in every pod.
func servedWorld(t *testing.T, opts netns.Options) *netns.World {
	t.Helper()
	w := netns.NewForTest(t, opts)
	if _, err := w.StartPodservers(podserverBin, defaultPorts); err != nil {
		t.Fatal(err)
	}
	return w
}

func mustPod(t *testing.T, w *netns.World, name string) netns.Pod {
	t.Helper()
	p, ok := w.Pod(name)
	if !ok {
		t.Fatalf("no pod %q in world", name)
	}
	return p
}

// flow is one probe and the answer it must get.
type flow struct {
	name       string
	from       string // namespace
	proto      string // "tcp" or "udp"
	to         netip.AddrPort
	opts       []probe.Option
	wantPod    string
	wantSource netip.Addr
}

func send(f flow) (probe.Answer, error) {
	if f.proto == "udp" {
		return probe.UDP(f.from, f.to.String(), probeTimeout, f.opts...)
	}
	return probe.TCP(f.from, f.to.String(), probeTimeout, f.opts...)
}

func checkFlows(t *testing.T, flows []flow) {
	t.Helper()
	for _, f := range flows {
		t.Run(f.name, func(t *testing.T) {
			got, err := send(f)
			if err != nil {
				t.Fatal(err)
			}
			if got.Pod != f.wantPod || got.SeenSource != f.wantSource.String() {
				t.Errorf("answer = %+v, want pod %s seeing source %s", got, f.wantPod, f.wantSource)
			}
		})
	}
}

func TestWorldRoutesPodNodeAndClientTraffic(t *testing.T) {
	w := servedWorld(t, netns.Options{Pods: 3, RemotePods: 2})
	a := w.Addrs
	p1, p2, p3 := mustPod(t, w, "pod-1"), mustPod(t, w, "pod-2"), mustPod(t, w, "pod-3")
	r1, r2 := mustPod(t, w, "node2-pod-1"), mustPod(t, w, "node2-pod-2")
	at := netip.AddrPortFrom
	checkFlows(t, []flow{
		{"pod to pod on the bridge", p1.Netns, "tcp", at(p2.IPv4, 8080), nil, "pod-2", p1.IPv4},
		{"pod to pod IPv6", p1.Netns, "tcp", at(p2.IPv6, 80), nil, "pod-2", p1.IPv6},
		{"pod to itself", p3.Netns, "tcp", at(p3.IPv4, 80), nil, "pod-3", p3.IPv4},
		{"node to pod", w.Node, "tcp", at(p1.IPv4, 8080), nil, "pod-1", a.NodeBridgeV4},
		{"client to pod via node", w.Client, "tcp", at(p3.IPv4, 80), nil, "pod-3", a.ClientV4},
		{"client alt source", w.Client, "tcp", at(p1.IPv4, 8080), []probe.Option{probe.Src(a.ClientAltV4.String())}, "pod-1", a.ClientAltV4},
		{"client to pod IPv6", w.Client, "tcp", at(p2.IPv6, 8080), nil, "pod-2", a.ClientV6},
		{"client alt source IPv6", w.Client, "tcp", at(p2.IPv6, 8080), []probe.Option{probe.Src(a.ClientAltV6.String())}, "pod-2", a.ClientAltV6},
		{"node pod to node2 pod", p1.Netns, "tcp", at(r1.IPv4, 8080), nil, "node2-pod-1", p1.IPv4},
		{"node2 pod to node pod IPv6", r2.Netns, "tcp", at(p3.IPv6, 80), nil, "pod-3", r2.IPv6},
		{"client to node2 pod", w.Client, "tcp", at(r2.IPv4, 80), nil, "node2-pod-2", a.ClientV4},
		{"client to node2 pod IPv6", w.Client, "tcp", at(r1.IPv6, 80), nil, "node2-pod-1", a.ClientV6},
		{"udp pod to pod", p2.Netns, "udp", at(p1.IPv4, 5353), nil, "pod-1", p2.IPv4},
		{"udp client to node2 pod IPv6", w.Client, "udp", at(r2.IPv6, 5353), nil, "node2-pod-2", a.ClientV6},
		{"udp client alt source", w.Client, "udp", at(p3.IPv4, 5353), []probe.Option{probe.Src(a.ClientAltV4.String())}, "pod-3", a.ClientAltV4},
	})
}

func TestLongLivedConnectionEchoes(t *testing.T) {
	w := servedWorld(t, netns.Options{Pods: 1, RemotePods: 1})
	p1 := mustPod(t, w, "pod-1")
	c, err := probe.OpenLongLived(w.Client, netip.AddrPortFrom(p1.IPv4, 8080).String(), probeTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.First.Pod != "pod-1" || c.First.SeenSource != w.Addrs.ClientV4.String() {
		t.Errorf("greeting = %+v", c.First)
	}
	for range 3 {
		if pod, err := c.Ping(); err != nil || pod != "pod-1" {
			t.Fatalf("Ping = %q, %v; want pod-1", pod, err)
		}
	}
}

// ruleCase installs one rule in a world namespace, probes, and expects an
// outcome class. The rule is removed afterwards.
type ruleCase struct {
	name    string
	ns      string   // where the rule goes; "" for no rule
	rule    []string // e.g. iptables -I FORWARD ...
	probe   func() error
	wantErr error
}

func TestProbeOutcomesTellRejectFromDrop(t *testing.T) {
	w := servedWorld(t, netns.Options{Pods: 3, RemotePods: 1})
	p1, p2, p3 := mustPod(t, w, "pod-1"), mustPod(t, w, "pod-2"), mustPod(t, w, "pod-3")
	const short = 300 * time.Millisecond
	tcp := func(ns string, a netip.Addr, port uint16, timeout time.Duration) func() error {
		return func() error { _, err := probe.TCP(ns, netip.AddrPortFrom(a, port).String(), timeout); return err }
	}
	udp := func(ns string, a netip.Addr, port uint16, timeout time.Duration) func() error {
		return func() error { _, err := probe.UDP(ns, netip.AddrPortFrom(a, port).String(), timeout); return err }
	}
	fwd := func(args ...string) []string { return append([]string{"iptables", "-I", "FORWARD"}, args...) }
	fwd6 := func(args ...string) []string { return append([]string{"ip6tables", "-I", "FORWARD"}, args...) }
	tests := []ruleCase{
		{"closed tcp port: RST", "", nil, tcp(w.Client, p1.IPv4, 9999, probeTimeout), probe.ErrRefused},
		{"closed udp port: ICMP port unreachable", "", nil, udp(w.Client, p1.IPv4, 9999, probeTimeout), probe.ErrRefused},
		{"REJECT default", w.Node, fwd("-d", p2.IPv4.String(), "-p", "tcp", "--dport", "8080", "-j", "REJECT"),
			tcp(w.Client, p2.IPv4, 8080, probeTimeout), probe.ErrRefused},
		{"REJECT host unreachable", w.Node, fwd("-d", p2.IPv4.String(), "-p", "tcp", "--dport", "80", "-j", "REJECT", "--reject-with", "icmp-host-unreachable"),
			tcp(w.Client, p2.IPv4, 80, probeTimeout), probe.ErrUnreachable},
		{"REJECT IPv6 default", w.Node, fwd6("-d", p1.IPv6.String(), "-p", "tcp", "--dport", "8080", "-j", "REJECT"),
			tcp(w.Client, p1.IPv6, 8080, probeTimeout), probe.ErrRefused},
		{"REJECT IPv6 admin prohibited", w.Node, fwd6("-d", p2.IPv6.String(), "-p", "tcp", "--dport", "80", "-j", "REJECT", "--reject-with", "icmp6-adm-prohibited"),
			tcp(w.Client, p2.IPv6, 80, probeTimeout), probe.ErrUnreachable},
		{"REJECT udp host unreachable", w.Node, fwd("-d", p3.IPv4.String(), "-p", "udp", "--dport", "5353", "-j", "REJECT", "--reject-with", "icmp-host-unreachable"),
			udp(w.Client, p3.IPv4, 5353, probeTimeout), probe.ErrUnreachable},
		{"DROP tcp", w.Node, fwd("-d", p3.IPv4.String(), "-p", "tcp", "--dport", "8080", "-j", "DROP"),
			tcp(w.Client, p3.IPv4, 8080, short), probe.ErrTimeout},
		{"DROP udp", w.Node, fwd("-d", p3.IPv4.String(), "-p", "udp", "--dport", "5353", "-j", "DROP"),
			udp(w.Client, p3.IPv4, 5353, short), probe.ErrTimeout},
		{"DROP in the sender's OUTPUT", w.Client, []string{"iptables", "-I", "OUTPUT", "-d", p1.IPv4.String(), "-p", "udp", "-j", "DROP"},
			udp(w.Client, p1.IPv4, 5353, probeTimeout), probe.ErrLocalDrop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.rule != nil {
				addRule(t, w, tt.ns, tt.rule)
			}
			err := tt.probe()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// addRule runs an "iptables -I/-A ..." command in ns and deletes the rule on
// cleanup.
func addRule(t *testing.T, w *netns.World, ns string, rule []string) {
	t.Helper()
	if _, err := w.Exec(ns, rule...); err != nil {
		t.Fatal(err)
	}
	del := append([]string{}, rule...)
	for i, arg := range del {
		if arg == "-I" || arg == "-A" {
			del[i] = "-D"
		}
	}
	t.Cleanup(func() {
		if _, err := w.Exec(ns, del...); err != nil {
			t.Errorf("remove rule: %v", err)
		}
	})
}
