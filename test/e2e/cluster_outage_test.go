package e2e

import (
	"cmp"
	"testing"
	"time"

	discovery "k8s.io/api/discovery/v1"

	"github.com/kproxy/kproxy/test/probe"
)

// outageDuration is how long traffic runs while kube-apiserver is down.
const outageDuration = 10 * time.Second

// TestClusterAPIServerOutage stops kube-apiserver for outageDuration while
// connections keep flowing through a Service: none may fail. After the
// restart, kproxy must pick up a change written to the API.
func TestClusterAPIServerOutage(t *testing.T) {
	ce := newClusterEnv(t, clusterEnvOptions{})
	w := ce.w
	const addr = "10.96.0.12:80"
	svc := service("outage", "10.96.0.12")
	ce.createService(svc)
	all := []discovery.Endpoint{endpoint(w, w.Pods[0]), endpoint(w, w.Pods[1]), endpoint(w, w.Pods[2])}
	s := ce.putSlice(slice(svc, "a", all...), time.Now())
	ce.waitAnswering(20*time.Second, addr, podNames(all)...)

	if err := ce.c.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	var ok, failed int
	var firstErr error
	for end := time.Now().Add(outageDuration); time.Now().Before(end); {
		if _, err := probe.TCP(w.Pods[0].Netns, addr, probeTimeout); err != nil {
			failed++
			firstErr = cmp.Or(firstErr, err)
		} else {
			ok++
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("during a %v kube-apiserver outage: %d connections answered, %d failed", outageDuration, ok, failed)
	if ok < 100 {
		t.Errorf("only %d connections in %v, want at least 100", ok, outageDuration)
	}
	if failed > 0 {
		t.Fatalf("%d connections failed during the outage, first: %v", failed, firstErr)
	}

	restart := time.Now()
	if err := ce.c.StartAPIServer(ce.ctx, 2*time.Minute); err != nil {
		t.Fatalf("restart kube-apiserver: %v", err)
	}
	t.Logf("kube-apiserver ready again after %v", time.Since(restart))
	s.Endpoints = all[1:2]
	written := time.Now()
	ce.putSlice(s, written)
	// client-go retries a lost watch with an exponential backoff capped at
	// 30 s and jittered up to twice that: 17 s and 31 s were measured.
	ce.waitAnswering(90*time.Second, addr, all[1].TargetRef.Name)
	t.Logf("change written after the restart reached traffic in %v", time.Since(written))
}
