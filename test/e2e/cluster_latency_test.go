package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	discovery "k8s.io/api/discovery/v1"

	"github.com/kproxy/kproxy/test/probe"
)

const (
	// latencyChanges is how many EndpointSlice writes are timed.
	latencyChanges = 50
	// latencyBound is the sanity bound on one change; the log has the real figures.
	latencyBound = 10 * time.Second
	// latencyPoll is the probe loop's period while waiting for a change.
	latencyPoll = 10 * time.Millisecond
)

// waitAnsweredBy probes addr from the first pod every latencyPoll until
// the pod named want answers, and returns the time that took since from.
func (ce *clusterEnv) waitAnsweredBy(addr, want string, from time.Time) (time.Duration, error) {
	var last string
	for time.Since(from) < latencyBound {
		a, err := probe.TCP(ce.w.Pods[0].Netns, addr, 200*time.Millisecond)
		if err == nil && a.Pod == want {
			return time.Since(from), nil
		}
		last = fmt.Sprintf("answer %q, err %v", a.Pod, err)
		time.Sleep(latencyPoll)
	}
	return 0, fmt.Errorf("%s not answered by %s within %v (last: %s)", addr, want, latencyBound, last)
}

// percentile is the nearest-rank percentile p (0 < p <= 100) of sorted.
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100
	return sorted[max(rank, 1)-1]
}

// TestClusterNetworkProgrammingLatency times an EndpointSlice write to the
// API until traffic reaches the new endpoint, for latencyChanges changes
// that each move the Service to another single pod, written as soon as the
// previous one is seen. With the deployed minSyncPeriod (1s) each write
// lands just after a sync and waits for the next one; with 1ms the figures
// are those of the watch → sync → ruleset pipeline itself.
func TestClusterNetworkProgrammingLatency(t *testing.T) {
	for _, tc := range []struct {
		name          string
		minSyncPeriod string
	}{
		{name: "minSyncPeriod=1ms", minSyncPeriod: "1ms"},
		{name: "deployed config", minSyncPeriod: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ce := newClusterEnv(t, clusterEnvOptions{MinSyncPeriod: tc.minSyncPeriod})
			got := ce.programmingLatencies(t)
			slices.Sort(got)
			t.Logf("API write → traffic at the new endpoint, %d changes (probe every %v): p50 %v, p99 %v, max %v, min %v",
				len(got), latencyPoll, percentile(got, 50), percentile(got, 99), got[len(got)-1], got[0])
			ce.checkProgrammingMetric(t)
		})
	}
}

// checkProgrammingMetric checks that kproxy's own network programming
// histogram (fed by the last-change-trigger-time annotation) saw every change.
func (ce *clusterEnv) checkProgrammingMetric(t *testing.T) {
	const name = "kubeproxy_network_programming_duration_seconds"
	code, body := ce.curl(ce.w.Node, "http://127.0.0.1:10249/metrics")
	if code != 200 {
		t.Fatalf("/metrics: HTTP %d", code)
	}
	count, sum := metricTotal(body, name+"_count"), metricTotal(body, name+"_sum")
	if count < latencyChanges {
		t.Errorf("%s_count = %v, want at least %d (one per annotated change)", name, count, latencyChanges)
		return
	}
	t.Logf("kproxy's %s: %v observations, mean %v", name, count,
		time.Duration(sum/count*float64(time.Second)).Round(time.Microsecond))
}

// metricTotal sums the samples of one metric over all its label sets.
func metricTotal(exposition, name string) float64 {
	var total float64
	for line := range strings.Lines(exposition) {
		fields := strings.Fields(line)
		if len(fields) != 2 || (fields[0] != name && !strings.HasPrefix(fields[0], name+"{")) {
			continue
		}
		if v, err := strconv.ParseFloat(fields[1], 64); err == nil {
			total += v
		}
	}
	return total
}

// programmingLatencies makes latencyChanges EndpointSlice changes and
// returns how long each took to reach traffic.
func (ce *clusterEnv) programmingLatencies(t *testing.T) []time.Duration {
	w := ce.w
	const addr = "10.96.0.11:80"
	svc := service("latency", "10.96.0.11")
	ce.createService(svc)
	s := ce.putSlice(slice(svc, "a", endpoint(w, w.Pods[0])), time.Now())
	ce.waitAnswering(20*time.Second, addr, w.Pods[0].Name)

	got := make([]time.Duration, 0, latencyChanges)
	for i := range latencyChanges {
		pod := w.Pods[(i+1)%len(w.Pods)]
		s.Endpoints = []discovery.Endpoint{endpoint(w, pod)}
		start := time.Now()
		s = ce.putSlice(s, start)
		d, err := ce.waitAnsweredBy(addr, pod.Name, start)
		if err != nil {
			t.Fatalf("change %d: %v", i+1, err)
		}
		got = append(got, d)
	}
	return got
}
