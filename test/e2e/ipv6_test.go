package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kproxy/kproxy/test/netns"
	"github.com/kproxy/kproxy/test/probe"
)

// TestIPv6ClusterIP checks a single-stack IPv6 ClusterIP from a pod: every
// endpoint answers over IPv6, the pod's source is kept, and the rules are in
// ip6tables (and none of it in iptables).
func TestIPv6ClusterIP(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		e := newEnv(t, envOptions{Mode: mode})
		w := e.w
		vip := e.startIPv6Service()

		const n = 150
		counts, err := probe.TCPMany(w.Pods[0].Netns, vip, n, probeTimeout)
		if err != nil {
			t.Fatalf("%d connections through the IPv6 ClusterIP: %v", n, err)
		}
		// Binomial(150, 1/3): mean 50, sd 5.8; [20, 80] is > 5 sd.
		for _, pod := range w.Pods {
			if c := counts[pod.Name]; c < 20 || c > 80 {
				t.Errorf("%s answered %d of %d connections, want about %d (all: %v)", pod.Name, c, n, n/3, counts)
			}
		}
		e.checkPodSource(w.Pods[1], vip, w.Pods[1].IPv6.String())

		if mode == "nftables" {
			if l := e.nftList("ip6"); !strings.Contains(l, "fd00:96::10 . tcp . 80") {
				t.Errorf("table ip6 kube-proxy has no service-ips element for fd00:96::10:\n%s", l)
			}
		} else {
			nat6 := e.run(w.Node, "ip6tables-save", "-t", "nat")
			if err := hasServiceChain(nat6, "e2e/web6:p", "fd00:96::10"); err != nil {
				t.Errorf("ip6tables nat: %v\n%s", err, nat6)
			}
		}
		if nat4 := e.save("nat") + e.nftList("ip"); strings.Contains(nat4, "e2e/web6:p") {
			t.Errorf("an IPv6-only service must not appear in iptables (IPv4):\n%s", nat4)
		}
	})
}

// startIPv6Service starts kproxy with an IPv6-only ClusterIP fd00:96::10 over
// the three pods' IPv6 addresses, waits until it answers, and returns "[vip]:80".
func (e *env) startIPv6Service() string {
	e.t.Helper()
	w := e.w
	const vip = "[fd00:96::10]:80"
	svc := service("web6", "fd00:96::10", withIPv6("fd00:96::10"))
	e.start(svc, slice(svc, "a", endpoint(w, w.Pods[0], v6(w.Pods[0])), endpoint(w, w.Pods[1], v6(w.Pods[1])),
		endpoint(w, w.Pods[2], v6(w.Pods[2]))))
	e.waitAnswer(w.Pods[0].Netns, vip)
	return vip
}

// hasServiceChain checks that saved nat rules jump from KUBE-SERVICES for vip
// to a KUBE-SVC chain that has rules of its own.
func hasServiceChain(saved, comment, vip string) error {
	chain := ""
	for _, line := range strings.Split(saved, "\n") {
		if strings.HasPrefix(line, "-A KUBE-SERVICES") && strings.Contains(line, vip) &&
			strings.Contains(line, comment+" cluster IP") {
			if i := strings.Index(line, "-j KUBE-SVC-"); i >= 0 {
				chain = strings.TrimSpace(line[i+3:])
			}
		}
	}
	if chain == "" {
		return fmt.Errorf("no KUBE-SERVICES rule for %s (%s) jumping to a KUBE-SVC chain", vip, comment)
	}
	if !strings.Contains(saved, "-A "+chain+" ") {
		return fmt.Errorf("chain %s has no rules", chain)
	}
	return nil
}

// checkPodSource connects from pod to vip until both another pod and the pod
// itself have answered: another pod must see src (no masquerade), the pod
// itself must see a masqueraded source (hairpin).
func (e *env) checkPodSource(from netns.Pod, vip, src string) {
	e.t.Helper()
	var other, self bool
	for i := 0; i < 100 && !(other && self); i++ {
		a, err := probe.TCP(from.Netns, vip, probeTimeout)
		if err != nil {
			e.t.Fatal(err)
		}
		if a.Pod != from.Name {
			other = true
			if a.SeenSource != src {
				e.t.Errorf("pod traffic must keep its source: %s saw %s, want %s", a.Pod, a.SeenSource, src)
			}
		} else {
			self = true
			if a.SeenSource == src {
				e.t.Errorf("hairpin traffic (pod to itself via the service) must be masqueraded, %s saw its own %s", a.Pod, src)
			}
		}
	}
	if !other || !self {
		e.t.Errorf("100 connections from %s to %s: reached another pod %v, itself %v", from.Name, vip, other, self)
	}
}
