package e2e

import (
	"strings"
	"testing"

	"github.com/kproxy/kproxy/test/probe"
)

// TestIPVSIPv6ClusterIP checks IPVS mode's IPv6 proxier: an IPv6 ClusterIP
// gets an IPv6 virtual server with every endpoint, its address on
// kube-ipvs0 and its member in the inet6 KUBE-CLUSTER-IP set, and a pod
// reaches every endpoint over IPv6 with its source kept (hairpin masqueraded).
func TestIPVSIPv6ClusterIP(t *testing.T) {
	requireIPVSMode(t)
	t.Parallel()
	e := newEnv(t, envOptions{})
	w := e.w
	vip := e.startIPv6Service()

	const n = 60
	counts, err := probe.TCPMany(w.Pods[0].Netns, vip, n, probeTimeout)
	if err != nil {
		t.Fatalf("%d connections through the IPv6 ClusterIP: %v", n, err)
	}
	for _, pod := range w.Pods { // rr: exactly n/3 each, ±2 for connections in flight
		if c := counts[pod.Name]; c < n/3-2 || c > n/3+2 {
			t.Errorf("%s answered %d of %d connections, want %d ± 2 (rr; all: %v)", pod.Name, c, n, n/3, counts)
		}
	}
	e.checkPodSource(w.Pods[1], vip, w.Pods[1].IPv6.String())

	adm := e.run(w.Node, "ipvsadm", "-Ln")
	if !strings.Contains(squeezeSpaces(adm), "TCP [fd00:96::10]:80 rr") {
		t.Errorf("no IPv6 virtual server in ipvsadm -Ln:\n%s", adm)
	}
	for _, pod := range w.Pods {
		if !strings.Contains(adm, "["+pod.IPv6.String()+"]:8080") {
			t.Errorf("ipvsadm -Ln lacks destination %s:\n%s", pod.IPv6, adm)
		}
	}
	if addrs := e.run(w.Node, "ip", "-6", "addr", "show", "dev", "kube-ipvs0"); !strings.Contains(addrs, "fd00:96::10/128") {
		t.Errorf("fd00:96::10 is not on kube-ipvs0:\n%s", addrs)
	}
	sets := e.run(w.Node, "ipset", "list")
	if !strings.Contains(sets, "fd00:96::10,tcp:80") || !strings.Contains(sets, "family inet6") {
		t.Errorf("the IPv6 ClusterIP is not in an inet6 ipset:\n%s", sets)
	}
}

func squeezeSpaces(s string) string { return strings.Join(strings.Fields(s), " ") }
