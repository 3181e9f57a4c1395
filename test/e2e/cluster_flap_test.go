package e2e

import (
	"fmt"
	"testing"
	"time"

	discovery "k8s.io/api/discovery/v1"
)

const (
	// flapSpan is how long kube-apiserver flaps.
	flapSpan = time.Minute
	// flapDown and flapUp are each flap's downtime and the time it stays
	// up once ready again (starting it takes a few seconds more).
	flapDown, flapUp = 3 * time.Second, 3 * time.Second
)

// TestClusterAPIServerFlapping stops and restarts kube-apiserver every few
// seconds for flapSpan while new connections flow through a Service, a few
// long-lived ones stay open and /healthz is polled. No connection may fail (the rules need no API
// server), /healthz must stay 200 as upstream's would (nothing queued is
// left unsynced), kproxy must not exit, and a change written once the
// flapping ends must reach traffic: client-go's reflectors back off after
// each lost watch (up to 30 s, jittered to 60 s), so that wait, bounded by
// watchResumeTimeout, is most of the test's time after the flapping.
func TestClusterAPIServerFlapping(t *testing.T) {
	t.Parallel() // mostly waiting (client-go backoff, paced writes): the three long cluster tests overlap
	ce := newClusterEnv(t, clusterEnvOptions{})
	w := ce.w
	const addr = "10.96.0.16:80"
	svc := service("flap", "10.96.0.16")
	ce.createService(svc)
	all := []discovery.Endpoint{endpoint(w, w.Pods[0]), endpoint(w, w.Pods[1]), endpoint(w, w.Pods[2])}
	s := ce.putSlice(slice(svc, "a", all...), time.Now())
	ce.waitAnswering(20*time.Second, addr, podNames(all)...)

	conns := ce.env.openLongLived(w.Client, addr, 3)
	health := ce.pollHealthz(healthzPoll)
	traffic := startTrafficLog(w.Pods[0].Netns, addr, faultPace)
	start := time.Now()
	flaps, downFor := ce.flap(flapSpan)
	kept, errs := pingCount(conns)

	s.Endpoints = all[1:]
	written := time.Now()
	ce.putSlice(s, written)
	ce.waitAnswering(watchResumeTimeout, addr, podNames(all[1:])...)
	reached := time.Since(written)
	summary := summarize(since(traffic.finish(), start))
	logFault(t, fmt.Sprintf("kube-apiserver flapping (%d stops over %v, down %v in all)", flaps, flapSpan, downFor.Round(time.Second)),
		summary, fmt.Sprintf("kept %d of %d", kept, len(conns)), fmt.Sprintf("change written after the flapping reached traffic in %v", reached.Round(time.Millisecond)))

	if summary.failed > 0 {
		t.Errorf("%d of %d new connections failed while kube-apiserver flapped; first: %v", summary.failed, summary.tried, summary.firstErr)
	}
	for _, err := range errs {
		t.Errorf("long-lived %s", err)
	}
	if flaps < 3 {
		t.Errorf("only %d flaps in %v; the test proves little", flaps, flapSpan)
	}
	health.finish(t)
	ce.requireRunning()
}

// flap stops kube-apiserver for flapDown, starts it and keeps it up for
// flapUp once ready, until span has passed; it returns the number of stops
// and the total time the API was unavailable (stop to ready).
func (ce *clusterEnv) flap(span time.Duration) (int, time.Duration) {
	ce.t.Helper()
	end := time.Now().Add(span)
	var n int
	var down time.Duration
	for time.Now().Before(end) {
		if err := ce.c.StopAPIServer(); err != nil {
			ce.t.Fatalf("stop kube-apiserver: %v", err)
		}
		stopped := time.Now()
		n++
		time.Sleep(flapDown) // an outage is a span of time, not a state to wait for
		if err := ce.c.StartAPIServer(ce.ctx, 2*time.Minute); err != nil {
			ce.t.Fatalf("restart kube-apiserver (flap %d): %v", n, err)
		}
		down += time.Since(stopped)
		time.Sleep(flapUp)
	}
	return n, down
}
