package e2e

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/kproxy/kproxy/test/netns"
	"github.com/kproxy/kproxy/test/probe"
)

// TestIPVSLoadBalancerSourceRanges checks loadBalancerSourceRanges in IPVS
// mode: the allowed source reaches the LB IP (every endpoint, masqueraded),
// another source is silently dropped by KUBE-SOURCE-RANGES-FIREWALL, and
// the service's NodePort ignores the ranges.
func TestIPVSLoadBalancerSourceRanges(t *testing.T) {
	requireIPVSMode(t)
	t.Parallel()
	e := newEnv(t, envOptions{})
	w := e.w
	allowed, other := w.Addrs.ClientV4.String(), w.Addrs.ClientAltV4.String()
	svc := service("lb", "10.96.0.12", withLoadBalancer(lbIngressIP, testNodePort, allowed+"/32"))
	e.start(svc, slice(svc, "a", endpoint(w, w.Pods[0]), endpoint(w, w.RemotePods[0])))
	lbAddr := lbIngressIP + ":80"

	e.waitAnswer(w.Client, lbAddr, probe.Src(allowed))
	// ClientV4 is the client's default source. rr alternates over the 2 endpoints.
	for _, a := range e.requirePods(w.Client, lbAddr, 10, w.Pods[0], w.RemotePods[0]) {
		if a.SeenSource == allowed {
			t.Fatalf("%s saw the client's own address through an ETP=Cluster LB IP; want masquerade", a.Pod)
		}
	}

	// The LB IP is bound to kube-ipvs0: without the firewall IPVS would answer.
	e.requireDroppedBy([]string{"-A KUBE-SOURCE-RANGES-FIREWALL -j DROP"}, w.Client, lbAddr, probe.Src(other))

	a, err := probe.TCP(w.Client, nodeAddr(w, testNodePort), probeTimeout, probe.Src(other))
	if err != nil {
		t.Fatalf("NodePort from %s (outside the LB source ranges) must work: %v", other, err)
	}
	if a.SeenSource == other {
		t.Errorf("NodePort traffic from %s reached %s unmasqueraded", other, a.Pod)
	}
}

// requireScheduler fails unless ipvsadm shows virtual server vs ("TCP
// ip:port") with scheduler sched and no flags.
func (e *env) requireScheduler(vs, sched string) {
	e.t.Helper()
	got, ok := e.ipvsadm()[vs]
	if !ok || got.scheduler != sched || got.flags != "" {
		e.t.Fatalf("ipvsadm -Ln: virtual server %s = %+v (found %v), want scheduler %s without flags", vs, got, ok, sched)
	}
}

// requireRoundRobin makes n connections from ns to addr and fails unless
// each of pods got n/len(pods) of them, give or take rrSlack.
func (e *env) requireRoundRobin(ns, addr string, n int, pods ...netns.Pod) {
	e.t.Helper()
	counts := podCounts(e.answers(ns, addr, n))
	if err := exactlyPods(counts, pods...); err != nil {
		e.t.Fatalf("%s from %s: %v", addr, ns, err)
	}
	// rr walks the destinations in turn: with no other client of this
	// virtual server the counts are equal. A random choice would give each
	// pod Binomial(n, 1/k) (sd ≈ 3.4 for n=60, k=4) and break the slack in
	// most runs.
	const rrSlack = 2
	share := n / len(pods)
	for _, p := range pods {
		if c := counts[p.Name]; c < share-rrSlack || c > share+rrSlack {
			e.t.Errorf("%s from %s: %s answered %d of %d, want %d±%d for rr (all: %v)",
				addr, ns, p.Name, c, n, share, rrSlack, counts)
		}
	}
}

// TestIPVSRoundRobinSpread checks the default rr scheduler with real
// traffic: a ClusterIP from a pod and a NodePort from outside spread
// connections evenly over local and remote endpoints.
func TestIPVSRoundRobinSpread(t *testing.T) {
	requireIPVSMode(t)
	t.Parallel()
	e := newEnv(t, envOptions{})
	w := e.w
	pods := []netns.Pod{w.Pods[1], w.Pods[2], w.RemotePods[0], w.RemotePods[1]}
	svc := service("web", "10.96.3.60", withNodePort(30085))
	e.start(svc, slice(svc, "a", endpoint(w, pods[0]), endpoint(w, pods[1]), endpoint(w, pods[2]), endpoint(w, pods[3])))
	e.waitAnswer(w.Pods[0].Netns, "10.96.3.60:80")
	e.requireScheduler("TCP 10.96.3.60:80", "rr")
	e.requireRoundRobin(w.Pods[0].Netns, "10.96.3.60:80", 60, pods...)
	e.requireRoundRobin(w.Client, nodeAddr(w, 30085), 40, pods...)
}

// TestIPVSSourceHashScheduler runs kproxy with --ipvs-scheduler sh: every
// virtual server uses source hashing (not persistence), and each client
// source always lands on the same backend, through the ClusterIP and the
// NodePort alike.
func TestIPVSSourceHashScheduler(t *testing.T) {
	requireIPVSMode(t)
	t.Parallel()
	e := newEnv(t, envOptions{KproxyArgs: []string{"--ipvs-scheduler", "sh"}})
	w := e.w
	// Pods 1 and 3 are clients only: the ClusterIP is served on this node, not on node2.
	pods := []netns.Pod{w.Pods[1], w.RemotePods[0], w.RemotePods[1]}
	svc := service("web", "10.96.3.50", withNodePort(30082))
	e.start(svc, slice(svc, "a", endpoint(w, pods[0]), endpoint(w, pods[1]), endpoint(w, pods[2])))
	e.waitAnswer(w.Pods[0].Netns, "10.96.3.50:80")
	e.requireScheduler("TCP 10.96.3.50:80", "sh")
	e.requireScheduler("TCP "+nodeAddr(w, 30082), "sh")
	if n := len(e.ipvsadm()["TCP 10.96.3.50:80"].dests); n != len(pods) {
		t.Fatalf("virtual server has %d destinations, want %d", n, len(pods))
	}

	sources := []struct {
		name, ns, addr string
		opts           []probe.Option
	}{
		{"pod-1 via ClusterIP", w.Pods[0].Netns, "10.96.3.50:80", nil},
		{"pod-3 via ClusterIP", w.Pods[2].Netns, "10.96.3.50:80", nil},
		{"client via NodePort", w.Client, nodeAddr(w, 30082), []probe.Option{probe.Src(w.Addrs.ClientV4.String())}},
		{"client alt via NodePort", w.Client, nodeAddr(w, 30082), []probe.Option{probe.Src(w.Addrs.ClientAltV4.String())}},
	}
	landed := map[string]string{}
	for _, s := range sources {
		// rr would reach all 3 pods in 3 connections; 10 from one source must reach 1.
		const n = 10
		counts := podCounts(e.answers(s.ns, s.addr, n, s.opts...))
		if len(counts) != 1 {
			t.Errorf("%s: %d connections reached %d pods (%v), want 1 (source hashing)", s.name, n, len(counts), counts)
		}
		landed[s.name] = strings.Join(slices.Sorted(maps.Keys(counts)), ",")
	}
	t.Logf("source → backend: %v", landed)
}

// TestIPVSExternalLocalFallsBackWithoutLocalEndpoints checks IPVS mode's
// documented difference from iptables mode (kubernetes/kubernetes#97081):
// with externalTrafficPolicy Local and no local endpoint, the NodePort and
// LB IP use the remote endpoints instead of dropping, while the health-check
// node port still reports zero local endpoints so a load balancer avoids the node.
func TestIPVSExternalLocalFallsBackWithoutLocalEndpoints(t *testing.T) {
	requireIPVSMode(t)
	t.Parallel()
	e := newEnv(t, envOptions{})
	w := e.w
	e.startExternalLocalWithRemoteEndpoints()
	for _, addr := range []string{nodeAddr(w, testNodePort), lbIngressIP + ":80"} {
		e.waitAnswer(w.Client, addr)
		e.requirePods(w.Client, addr, 10, w.RemotePods[0], w.RemotePods[1])
	}
	if dests, _ := e.ipvsDests(lbIngressIP + ":80"); len(dests) != 2 {
		t.Errorf("LB virtual server destinations %v, want the 2 remote endpoints", dests)
	}
}

// TestIPVSUnparseableSourceRangesFailClosed checks, in IPVS mode, that a
// loadBalancerSourceRanges entry kproxy cannot parse never opens the LB IP:
// with no valid range every source is dropped by KUBE-SOURCE-RANGES-FIREWALL,
// next to a valid range only that range gets in, and the NodePorts (not
// subject to source ranges) keep working.
func TestIPVSUnparseableSourceRangesFailClosed(t *testing.T) {
	requireIPVSMode(t)
	t.Parallel()
	e := newEnv(t, envOptions{})
	w := e.w
	allowed, other := w.Addrs.ClientV4.String(), w.Addrs.ClientAltV4.String()
	const closedLB, mixedLB = "192.168.60.110", "192.168.60.111"
	closed := service("closed", "10.96.0.110", withLoadBalancer(closedLB, 30110, "not-a-cidr"))
	mixed := service("mixed", "10.96.0.111", withLoadBalancer(mixedLB, 30111, "10.0.0.0/33", allowed+"/32"))
	e.start(closed, slice(closed, "a", endpoint(w, w.Pods[0])), mixed, slice(mixed, "a", endpoint(w, w.Pods[1])))

	e.waitAnswer(w.Client, mixedLB+":80", probe.Src(allowed))
	e.waitAnswer(w.Client, nodeAddr(w, 30110), probe.Src(other))
	drop := []string{"-A KUBE-SOURCE-RANGES-FIREWALL -j DROP"}
	e.requireDroppedBy(drop, w.Client, closedLB+":80", probe.Src(allowed))
	e.requireDroppedBy(drop, w.Client, closedLB+":80", probe.Src(other))
	e.requireDroppedBy(drop, w.Client, mixedLB+":80", probe.Src(other))
	if _, err := probe.TCP(w.Client, nodeAddr(w, 30111), probeTimeout, probe.Src(other)); err != nil {
		t.Errorf("NodePort of the service with a bad source range, from %s: %v", other, err)
	}
	for _, name := range []string{"e2e/closed", "e2e/mixed"} {
		if !strings.Contains(e.kproxy.Output(), name) {
			t.Errorf("kproxy did not log the unparseable source range of %s", name)
		}
	}
}
