package e2e

import (
	"fmt"
	"testing"
	"time"

	discovery "k8s.io/api/discovery/v1"

	"github.com/kproxy/kproxy/test/probe"
)

const (
	// trafficPace spaces the new connections of the cluster tests' traffic
	// loops: about 40 a second, enough to see any gap, light on 2 cores.
	trafficPace = 25 * time.Millisecond
	// downConns is how many new connections must succeed while kproxy is dead.
	downConns = 40
)

// TestClusterRestartUnderTraffic kills kproxy (deployed configuration, real
// kube-apiserver) with SIGKILL while a stream of new connections and a few
// long-lived ones go through a Service, keeps it dead until downConns new
// connections have been made, and starts it again. No new connection may
// fail, the long-lived ones must still reach the same pod, a Service created
// while kproxy was dead must be served by the new process, and a change
// written after the restart must reach traffic.
func TestClusterRestartUnderTraffic(t *testing.T) {
	ce := newClusterEnv(t, clusterEnvOptions{})
	w := ce.w
	const addr, addrB = "10.96.0.14:80", "10.96.0.15:80"
	svc, svcB := service("restart", "10.96.0.14"), service("restart-b", "10.96.0.15")
	ce.createService(svc)
	all := []discovery.Endpoint{endpoint(w, w.Pods[0]), endpoint(w, w.Pods[1]), endpoint(w, w.Pods[2])}
	s := ce.putSlice(slice(svc, "a", all[:2]...), time.Now())
	ce.waitAnswering(20*time.Second, addr, podNames(all[:2])...)

	conns := ce.env.openLongLived(w.Client, addr, 4)
	traffic := startPacedTraffic(w.Pods[0].Netns, addr, trafficPace)
	ce.killKproxy()
	killed, before := time.Now(), traffic.made()
	ce.createService(svcB)
	ce.putSlice(slice(svcB, "b", all[2]), time.Now())
	ce.eventually(30*time.Second, fmt.Sprintf("%d new connections with kproxy dead", downConns), func() error {
		if n := traffic.made() - before; n < downConns {
			return fmt.Errorf("%d so far", n)
		}
		return nil
	})
	t.Logf("kproxy dead for %v: %d new connections made meanwhile", time.Since(killed).Round(time.Millisecond),
		traffic.made()-before)

	started := time.Now()
	ce.startDeployedKproxy("")
	ce.waitSynced()
	t.Logf("restarted kproxy synced %v after its start", time.Since(started).Round(time.Millisecond))
	ce.waitAnswering(20*time.Second, addrB, all[2].TargetRef.Name)

	s.Endpoints = all
	written := time.Now()
	ce.putSlice(s, written)
	ce.waitAnswering(20*time.Second, addr, podNames(all)...)
	t.Logf("change written after the restart reached traffic in %v", time.Since(written).Round(time.Millisecond))

	traffic.finish(t)
	pingAll(t, conns)
	t.Logf("%d long-lived connections checked after the restart", len(conns))
	ce.assertSingleJumps()
}

// startPacedTraffic is startTraffic with one new connection every pace, for
// loops that run tens of seconds next to a control plane.
func startPacedTraffic(ns, addr string, pace time.Duration) *traffic {
	tr := &traffic{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		tick := time.NewTicker(pace)
		defer tick.Stop()
		for range maxTrafficConns {
			_, err := probe.TCP(ns, addr, probeTimeout)
			tr.mu.Lock()
			if err != nil {
				tr.errs = append(tr.errs, fmt.Errorf("%s: %w", time.Now().Format("15:04:05.000"), err))
			} else {
				tr.ok++
			}
			tr.mu.Unlock()
			select {
			case <-tr.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return tr
}

// made is how many new connections the loop has attempted so far.
func (tr *traffic) made() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.ok + len(tr.errs)
}
