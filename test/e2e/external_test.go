package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kproxy/kproxy/test/netns"
	"github.com/kproxy/kproxy/test/probe"
)

const (
	// dropTimeout bounds probes that expect silence: a DROP answers nothing,
	// while a reject or a closed port answers within milliseconds.
	dropTimeout = time.Second
	// settleTimeout bounds waiting for kproxy to (re)program a world.
	settleTimeout = 30 * time.Second
	// changeTimeout bounds how long traffic may take to follow a manifest edit.
	changeTimeout = 5 * time.Second
	testNodePort  = 30080
	testHCNP      = 32100
	lbIngressIP   = "192.168.60.100"
	externalIP    = "192.168.70.10"
)

// nodeAddr is ip:port on the node's client-facing address.
func nodeAddr(w *netns.World, port int) string {
	return fmt.Sprintf("%s:%d", w.Addrs.NodeV4, port)
}

// waitAnswer waits until a TCP connection to addr from ns is answered.
func (e *env) waitAnswer(ns, addr string, opts ...probe.Option) probe.Answer {
	e.t.Helper()
	var a probe.Answer
	e.eventually(settleTimeout, addr+" answers from "+ns, func() error {
		var err error
		a, err = probe.TCP(ns, addr, probeTimeout, opts...)
		return err
	})
	return a
}

// answers makes n TCP connections and returns every answer; any failure fails the test.
func (e *env) answers(ns, addr string, n int, opts ...probe.Option) []probe.Answer {
	e.t.Helper()
	out := make([]probe.Answer, 0, n)
	for i := range n {
		a, err := probe.TCP(ns, addr, probeTimeout, opts...)
		if err != nil {
			e.t.Fatalf("connection %d of %d to %s from %s: %v", i+1, n, addr, ns, err)
		}
		out = append(out, a)
	}
	return out
}

// podCounts counts answers per pod.
func podCounts(answers []probe.Answer) map[string]int {
	counts := map[string]int{}
	for _, a := range answers {
		counts[a.Pod]++
	}
	return counts
}

// exactlyPods is nil iff the pods that answered are exactly want.
func exactlyPods(counts map[string]int, want ...netns.Pod) error {
	names := make([]string, 0, len(want))
	for _, p := range want {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	if got := slices.Sorted(maps.Keys(counts)); !slices.Equal(got, names) {
		return fmt.Errorf("answering pods %v, want exactly %v (counts %v)", got, names, counts)
	}
	return nil
}

// requirePods makes n connections and fails unless exactly want answer.
func (e *env) requirePods(ns, addr string, n int, want ...netns.Pod) []probe.Answer {
	e.t.Helper()
	answers := e.answers(ns, addr, n)
	if err := exactlyPods(podCounts(answers), want...); err != nil {
		e.t.Fatalf("%s from %s: %v", addr, ns, err)
	}
	return answers
}

// waitPods polls until n connections are answered by exactly want, after a manifest edit.
func (e *env) waitPods(ns, addr string, n int, want ...netns.Pod) {
	e.t.Helper()
	e.eventually(changeTimeout, addr+" answered by the expected pods", func() error {
		counts, err := probe.TCPMany(ns, addr, n, probeTimeout)
		if err != nil {
			return err
		}
		return exactlyPods(counts, want...)
	})
}

// requireDropped fails unless a connection to addr from ns times out (DROP),
// as opposed to being answered, refused or reported unreachable.
func (e *env) requireDropped(ns, addr string, opts ...probe.Option) {
	e.t.Helper()
	a, err := probe.TCP(ns, addr, dropTimeout, opts...)
	if !errors.Is(err, probe.ErrTimeout) {
		e.t.Fatalf("%s from %s: want a silent drop (timeout), got answer %+v, error %v", addr, ns, a, err)
	}
}

// requireDroppedBy is requireDropped plus proof that the drop happened in
// the node's filter rule containing every string of rule: its packet counter
// must grow during the probe. A timeout alone could also be a packet bounced to
// the client, which does not forward. kproxy rewrites (and so zeroes) its
// filter chains on every sync, so an attempt that straddles a sync is retried.
// In nftables mode, whose rules have no counters, it is requireDropped.
func (e *env) requireDroppedBy(rule []string, ns, addr string, opts ...probe.Option) {
	e.t.Helper()
	if e.mode == "nftables" {
		// nftables mode's rules carry no counters (as upstream's): the drop is the timeout.
		e.requireDropped(ns, addr, opts...)
		return
	}
	const attempts = 3
	for range attempts {
		before := e.ruleHits("filter", rule...)
		e.requireDropped(ns, addr, opts...)
		if e.ruleHits("filter", rule...) > before {
			return
		}
	}
	e.t.Fatalf("%s from %s timed out %d times, but the filter rule matching %q never counted it:\n%s",
		addr, ns, attempts, rule, e.save("filter"))
}

// ruleHits sums the packet counters of the node's rules in table whose text contains every substr.
func (e *env) ruleHits(table string, substrs ...string) int {
	e.t.Helper()
	total := 0
	for line := range strings.SplitSeq(e.run(e.w.Node, "iptables-save", "-c", "-t", table), "\n") {
		if !strings.HasPrefix(line, "[") || !containsAll(line, substrs) {
			continue
		}
		counter, _, _ := strings.Cut(strings.TrimPrefix(line, "["), ":")
		n, err := strconv.Atoi(counter)
		if err != nil {
			e.t.Fatalf("counter of %q: %v", line, err)
		}
		total += n
	}
	return total
}

func containsAll(s string, substrs []string) bool {
	for _, sub := range substrs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// healthCheck is one answer of a health-check node port.
type healthCheck struct {
	status int
	weight string // X-Load-Balancing-Endpoint-Weight
	body   struct {
		Service struct {
			Namespace string `json:"namespace"`
			Name      string `json:"name"`
		} `json:"service"`
		LocalEndpoints      int  `json:"localEndpoints"`
		ServiceProxyHealthy bool `json:"serviceProxyHealthy"`
	}
}

// getHealthCheck GETs http://<node>:port/ from the client namespace with curl.
func (e *env) getHealthCheck(port int) (healthCheck, error) {
	var hc healthCheck
	url := "http://" + nodeAddr(e.w, port) + "/"
	out, err := e.w.Exec(e.w.Client, "curl", "-sS", "-i", "--max-time", "2", url)
	if err != nil {
		return hc, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
	if err != nil {
		return hc, fmt.Errorf("parse curl output %q: %w", out, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return hc, fmt.Errorf("read body: %w", err)
	}
	if err := json.Unmarshal(body, &hc.body); err != nil {
		return hc, fmt.Errorf("health-check body %q: %w", body, err)
	}
	hc.status, hc.weight = resp.StatusCode, resp.Header.Get("X-Load-Balancing-Endpoint-Weight")
	return hc, nil
}

// waitHealthCheck polls the health-check node port until it gives status and localEndpoints.
func (e *env) waitHealthCheck(port, status, localEndpoints int) healthCheck {
	e.t.Helper()
	var hc healthCheck
	e.eventually(settleTimeout, fmt.Sprintf("health check :%d answers %d", port, status), func() error {
		var err error
		if hc, err = e.getHealthCheck(port); err != nil {
			return err
		}
		if hc.status != status || hc.body.LocalEndpoints != localEndpoints {
			return fmt.Errorf("status %d, localEndpoints %d", hc.status, hc.body.LocalEndpoints)
		}
		return nil
	})
	return hc
}

// TestNodePortReachesAllEndpointsMasqueraded checks an ETP=Cluster NodePort
// from outside: local and remote endpoints all answer, and none of them sees
// the client's address (the node masquerades).
func TestNodePortReachesAllEndpointsMasqueraded(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		e := newEnv(t, envOptions{Mode: mode})
		w := e.w
		pods := []netns.Pod{w.Pods[0], w.Pods[1], w.RemotePods[0], w.RemotePods[1]}
		svc := service("web", "10.96.0.10", withNodePort(testNodePort))
		e.start(svc, slice(svc, "a", endpoint(w, pods[0]), endpoint(w, pods[1]),
			endpoint(w, pods[2]), endpoint(w, pods[3])))
		addr := nodeAddr(w, testNodePort)
		e.waitAnswer(w.Client, addr)

		// 4 endpoints, 100 connections: P(one never chosen) < 4*(3/4)^100 ≈ 1e-12.
		for _, a := range e.requirePods(w.Client, addr, 100, pods...) {
			if a.SeenSource == w.Addrs.ClientV4.String() {
				t.Fatalf("%s saw the client's own address %s through an ETP=Cluster NodePort; want masquerade", a.Pod, a.SeenSource)
			}
		}
	})
}

// TestExternalIPReachableFromOutside checks that spec.externalIPs are served
// for traffic routed to the node, on local and remote endpoints.
func TestExternalIPReachableFromOutside(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		e := newEnv(t, envOptions{Mode: mode})
		w := e.w
		svc := service("ext", "10.96.0.11", withExternalIPs(externalIP))
		e.start(svc, slice(svc, "a", endpoint(w, w.Pods[0]), endpoint(w, w.RemotePods[0])))
		addr := externalIP + ":80"
		e.waitAnswer(w.Client, addr)
		// 2 endpoints, 40 connections: P(one never chosen) = 2*(1/2)^40.
		e.requirePods(w.Client, addr, 40, w.Pods[0], w.RemotePods[0])
	})
}

// TestLoadBalancerSourceRanges checks loadBalancerSourceRanges: the allowed
// source reaches the LB IP, another source is silently dropped by
// KUBE-PROXY-FIREWALL, and the NodePort of the same service ignores the ranges.
func TestLoadBalancerSourceRanges(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		e := newEnv(t, envOptions{Mode: mode})
		w := e.w
		allowed, other := w.Addrs.ClientV4.String(), w.Addrs.ClientAltV4.String()
		svc := service("lb", "10.96.0.12", withLoadBalancer(lbIngressIP, testNodePort, allowed+"/32"))
		e.start(svc, slice(svc, "a", endpoint(w, w.Pods[0]), endpoint(w, w.RemotePods[0])))
		lbAddr := lbIngressIP + ":80"

		e.waitAnswer(w.Client, lbAddr, probe.Src(allowed))
		e.requirePods(w.Client, lbAddr, 40, w.Pods[0], w.RemotePods[0])

		// Without the firewall the packet would be DNATed and answered.
		if mode == "nftables" {
			// nftables mode's rules carry no counters: the drop is the
			// timeout, and the LB IP must go through a firewall chain.
			e.requireDropped(w.Client, lbAddr, probe.Src(other))
			if l := e.nftList("ip"); !strings.Contains(l, lbIngressIP+" . tcp . 80") || !strings.Contains(l, "goto firewall-") {
				t.Errorf("no firewall-ips element for %s:\n%s", lbAddr, l)
			}
		} else {
			e.requireDroppedBy([]string{"-A KUBE-PROXY-FIREWALL", "-d " + lbIngressIP, "-j DROP"}, w.Client, lbAddr, probe.Src(other))
		}

		a, err := probe.TCP(w.Client, nodeAddr(w, testNodePort), probeTimeout, probe.Src(other))
		if err != nil {
			t.Fatalf("NodePort from %s (outside the LB source ranges) must work: %v", other, err)
		}
		if a.SeenSource == other {
			t.Errorf("NodePort traffic from %s reached %s unmasqueraded", other, a.Pod)
		}
	})
}

// TestExternalLocalKeepsClientSourceAndReportsHealth checks ETP=Local with one
// local and one remote endpoint: NodePort and LB IP reach only the local pod,
// which sees the client's real address, and the health-check node port
// reports one local endpoint.
func TestExternalLocalKeepsClientSourceAndReportsHealth(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		e := newEnv(t, envOptions{Mode: mode})
		w := e.w
		svc := service("local", "10.96.0.13", withLoadBalancer(lbIngressIP, testNodePort), withExternalLocal(testHCNP))
		e.start(svc, slice(svc, "a", endpoint(w, w.Pods[0]), endpoint(w, w.RemotePods[0])))
		client := w.Addrs.ClientV4.String()

		for _, addr := range []string{nodeAddr(w, testNodePort), lbIngressIP + ":80"} {
			e.waitAnswer(w.Client, addr)
			// With Cluster policy 2 endpoints would both show up in 40 connections (P miss = 2^-39).
			for _, a := range e.requirePods(w.Client, addr, 40, w.Pods[0]) {
				if a.SeenSource != client {
					t.Fatalf("%s via %s saw %s; ETP=Local must keep the client's source %s", a.Pod, addr, a.SeenSource, client)
				}
			}
		}

		hc := e.waitHealthCheck(testHCNP, http.StatusOK, 1)
		if hc.weight != "1" {
			t.Errorf("X-Load-Balancing-Endpoint-Weight = %q, want \"1\"", hc.weight)
		}
		if hc.body.Service.Namespace != testNS || hc.body.Service.Name != "local" || !hc.body.ServiceProxyHealthy {
			t.Errorf("health-check body %+v, want service %s/local and serviceProxyHealthy", hc.body, testNS)
		}
	})
}

// startExternalLocalWithRemoteEndpoints starts an externalTrafficPolicy Local
// LoadBalancer Service (10.96.0.14) whose endpoints are all on node2, and
// checks its health check answers 503 with zero local endpoints (weight 0),
// so that a load balancer avoids this node.
func (e *env) startExternalLocalWithRemoteEndpoints() {
	e.t.Helper()
	w := e.w
	// Only LoadBalancer Services get a health-check node port (upstream NeedsHealthCheck).
	svc := service("remote", "10.96.0.14", withLoadBalancer(lbIngressIP, testNodePort), withExternalLocal(testHCNP))
	e.start(svc, slice(svc, "a", endpoint(w, w.RemotePods[0]), endpoint(w, w.RemotePods[1])))
	hc := e.waitHealthCheck(testHCNP, http.StatusServiceUnavailable, 0)
	if hc.weight != "0" {
		e.t.Errorf("X-Load-Balancing-Endpoint-Weight = %q, want \"0\"", hc.weight)
	}
}

// TestExternalLocalWithoutLocalEndpointsDrops checks ETP=Local when every
// endpoint is on another node: NodePort and LB IP silently drop (no reject,
// no fall-through to the node's own closed port) and the health check
// answers 503 with zero local endpoints so a load balancer avoids this node.
func TestExternalLocalWithoutLocalEndpointsDrops(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		e := newEnv(t, envOptions{Mode: mode})
		w := e.w
		e.startExternalLocalWithRemoteEndpoints()
		// The cluster IP still reaches the remote endpoints: the service is alive, just not here.
		e.waitAnswer(w.Pods[0].Netns, "10.96.0.14:80")

		for _, c := range []struct{ addr, rule string }{
			{nodeAddr(w, testNodePort), fmt.Sprintf("--dport %d", testNodePort)},
			{lbIngressIP + ":80", "-d " + lbIngressIP},
		} {
			// Without the rule a NodePort would be refused by the node itself, but an
			// LB IP would bounce to the client and time out there: check the counter.
			e.requireDroppedBy([]string{"has no local endpoints", c.rule, "-j DROP"}, w.Client, c.addr)
		}
	})
}
