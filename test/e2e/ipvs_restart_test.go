package e2e

import (
	"fmt"
	"testing"

	"github.com/kproxy/kproxy/test/netns"
	"github.com/kproxy/kproxy/test/probe"
)

// TestIPVSRestartUnderTraffic kills kproxy (SIGKILL) in IPVS mode while new
// connections flow and long-lived ones are open, one of them to a
// destination draining at weight 0. While kproxy is down that endpoint comes
// back; the restarted kproxy must restore it to weight 1 in its first sync
// (no destination left at weight 0), no new connection may fail, every
// long-lived connection must still echo from its pod, and no jump rule may
// be duplicated.
func TestIPVSRestartUnderTraffic(t *testing.T) {
	requireIPVSMode(t)
	t.Parallel()
	e := newEnv(t, envOptions{})
	w := e.w
	const vip = "10.96.3.70:80"
	svc := service("web", "10.96.3.70")
	all := slice(svc, "a", endpoint(w, w.Pods[0]), endpoint(w, w.Pods[1]), endpoint(w, w.Pods[2]))
	e.start(svc, all)
	e.waitAnswer(w.Pods[0].Netns, vip)
	drained := w.Pods[2]
	conns := e.openLongLivedTo(w.Client, vip, drained)
	traffic := startTraffic(w.Pods[1].Netns, vip)

	e.apply(svc, slice(svc, "a", endpoint(w, w.Pods[0]), endpoint(w, w.Pods[1])))
	e.eventually(settleTimeout, drained.Name+" drains at weight 0", func() error {
		dests, _ := e.ipvsDests(vip)
		if d, ok := dests[podEndpoint(drained)]; !ok || d.weight != 0 || d.active == 0 {
			return fmt.Errorf("destinations %v: want %s at weight 0 with an active connection", dests, podEndpoint(drained))
		}
		return nil
	})

	e.killKproxy()
	e.apply(svc, all) // the endpoint comes back while kproxy is down
	e.startKproxy()
	e.waitSynced()
	dests, _ := e.ipvsDests(vip)
	for _, p := range w.Pods[:3] {
		if d, ok := dests[podEndpoint(p)]; !ok || d.weight != 1 {
			t.Errorf("after the restart's first sync %s is %+v (present %v), want weight 1; all: %v",
				podEndpoint(p), d, ok, dests)
		}
	}
	if len(dests) != 3 {
		t.Errorf("after the restart: destinations %v, want the 3 endpoints", dests)
	}

	traffic.finish(t)
	pingAll(t, conns)
	// rr: 3 pods in 30 connections, the restored one included.
	e.requirePods(w.Pods[0].Netns, vip, 30, w.Pods[0], w.Pods[1], w.Pods[2])
	e.assertSingleJumps()
}

// openLongLivedTo opens long-lived connections from ns to addr until one
// reaches pod (rr reaches every destination within a round) and returns
// them all.
func (e *env) openLongLivedTo(ns, addr string, pod netns.Pod) []*probe.Conn {
	e.t.Helper()
	var conns []*probe.Conn
	for range 10 {
		conns = append(conns, e.openLongLived(ns, addr, 1)...)
		if conns[len(conns)-1].First.Pod == pod.Name {
			return conns
		}
	}
	e.t.Fatalf("10 long-lived connections to %s from %s, none reached %s", addr, ns, pod.Name)
	return nil
}
