package netns_test

import (
	"net/netip"
	"testing"

	"github.com/kproxy/kproxy/test/netns"
	"github.com/kproxy/kproxy/test/probe"
)

// TestHandMadeDNATCarriesServiceTraffic proves the world carries NAT'ed
// traffic the way kproxy's rules will use it. Every rule is added in the
// node namespace only.
func TestHandMadeDNATCarriesServiceTraffic(t *testing.T) {
	w := servedWorld(t, netns.Options{Pods: 3, RemotePods: 1})
	p1, p2 := mustPod(t, w, "pod-1"), mustPod(t, w, "pod-2")
	a := w.Addrs
	nat := func(cmd string, args ...string) {
		addRule(t, w, w.Node, append([]string{cmd, "-t", "nat", "-A"}, args...))
	}
	nat("iptables", "PREROUTING", "-d", "10.96.0.1", "-p", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination", "10.244.1.11:8080")
	nat("iptables", "PREROUTING", "-d", "10.96.0.1", "-p", "udp", "--dport", "53", "-j", "DNAT", "--to-destination", "10.244.1.11:5353")
	nat("ip6tables", "PREROUTING", "-d", "fd00:96::1", "-p", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination", "[fd00:10:244:1::11]:8080")
	// Hairpin: a pod reaching itself through the service must be
	// masqueraded, or it would answer itself directly.
	nat("iptables", "POSTROUTING", "-s", "10.244.1.11", "-d", "10.244.1.11", "-j", "MASQUERADE")

	vip := netip.MustParseAddrPort("10.96.0.1:80")
	flows := []flow{
		{"client through DNAT", w.Client, "tcp", vip, nil, "pod-1", a.ClientV4},
		{"client alt source through DNAT", w.Client, "tcp", vip, []probe.Option{probe.Src(a.ClientAltV4.String())}, "pod-1", a.ClientAltV4},
		{"udp through DNAT", w.Client, "udp", netip.MustParseAddrPort("10.96.0.1:53"), nil, "pod-1", a.ClientV4},
		{"IPv6 through DNAT", w.Client, "tcp", netip.MustParseAddrPort("[fd00:96::1]:80"), nil, "pod-1", a.ClientV6},
		{"hairpin: pod to itself via service, masqueraded", p1.Netns, "tcp", vip, nil, "pod-1", a.NodeBridgeV4},
	}
	brnf, err := w.BridgeNetfilter()
	if err != nil {
		t.Fatal(err)
	}
	if brnf {
		flows = append(flows, flow{"pod to pod on the same bridge via service", p2.Netns, "tcp", vip, nil, "pod-1", p2.IPv4})
	} else {
		t.Log("br_netfilter is off in the node namespace: same-bridge service traffic without masquerade is not checked")
	}
	checkFlows(t, flows)

	t.Run("long-lived connection through DNAT", func(t *testing.T) {
		c, err := probe.OpenLongLived(w.Client, vip.String(), probeTimeout)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if pod, err := c.Ping(); err != nil || pod != "pod-1" {
			t.Fatalf("Ping = %q, %v; want pod-1", pod, err)
		}
	})
}

func TestTCPManySpreadsOverStatisticRules(t *testing.T) {
	w := servedWorld(t, netns.Options{Pods: 3, RemotePods: 1})
	nat := func(args ...string) {
		addRule(t, w, w.Node, append([]string{"iptables", "-t", "nat", "-A", "PREROUTING", "-d", "10.96.0.2", "-p", "tcp", "--dport", "80"}, args...))
	}
	nat("-m", "statistic", "--mode", "random", "--probability", "0.5", "-j", "DNAT", "--to-destination", "10.244.1.12:8080")
	nat("-j", "DNAT", "--to-destination", "10.244.1.13:8080")
	const n = 30 // all 30 on one pod has probability 2^-29
	counts, err := probe.TCPMany(w.Client, "10.96.0.2:80", n, probeTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if counts["pod-2"] == 0 || counts["pod-3"] == 0 || counts["pod-2"]+counts["pod-3"] != n {
		t.Errorf("counts = %v, want %d answers spread over pod-2 and pod-3", counts, n)
	}
}
