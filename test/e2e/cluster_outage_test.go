package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

const (
	// outageDuration is how long traffic runs while kube-apiserver is down.
	outageDuration = 30 * time.Second
	// healthzPoll is how often /healthz is asked during the outage test.
	healthzPoll = 100 * time.Millisecond
	// watchResumeTimeout bounds the wait for kproxy's watches to come back:
	// client-go (as in upstream kube-proxy) retries a lost watch with an
	// exponential backoff, 0.8 s doubling to a 30 s cap, each wait jittered up
	// to twice that; after a 30 s outage each reflector relists 10-90 s after
	// the restart (52 s and more than 90 s for EndpointSlices were measured).
	watchResumeTimeout = 150 * time.Second
	// toBeDeletedTaint is the Cluster Autoscaler's taint on a node it is
	// about to delete; upstream's /healthz fails on such a node.
	toBeDeletedTaint = "ToBeDeletedByClusterAutoscaler"
)

// TestClusterAPIServerOutage stops kube-apiserver for outageDuration while
// new connections keep flowing through a Service and /healthz is polled.
// None may fail, and /healthz must follow upstream's rule: 503 only when a
// queued change has not been synced within 2 × syncPeriod (60 s deployed)
// or the node is being deleted, so an outage with nothing pending stays 200.
// Two changes made while kproxy could not see them must reach traffic after
// the restart: one written to etcd during the outage (kproxy learns it only
// from a relist), one written through the API right after the restart,
// before kproxy's watch resumes.
func TestClusterAPIServerOutage(t *testing.T) {
	t.Parallel() // mostly waiting (client-go backoff, paced writes): the three long cluster tests overlap
	ce := newClusterEnv(t, clusterEnvOptions{})
	w := ce.w
	const addrA, addrB = "10.96.0.12:80", "10.96.0.13:80"
	svcA, svcB := service("outage", "10.96.0.12"), service("outage-b", "10.96.0.13")
	ce.createService(svcA)
	ce.createService(svcB)
	all := []discovery.Endpoint{endpoint(w, w.Pods[0]), endpoint(w, w.Pods[1]), endpoint(w, w.Pods[2])}
	sliceA := ce.putSlice(slice(svcA, "a", all...), time.Now())
	sliceB := ce.putSlice(slice(svcB, "b", all[0]), time.Now())
	ce.waitAnswering(20*time.Second, addrA, podNames(all)...)
	ce.waitAnswering(20*time.Second, addrB, all[0].TargetRef.Name)
	// First prove the poll below could see a 503 (before the outage: after
	// it, the Node watch may still be in client-go's backoff for a minute).
	ce.checkNodeDeletionFailsHealthz()

	health := ce.pollHealthz(healthzPoll)
	traffic := startPacedTraffic(w.Pods[0].Netns, addrA, trafficPace)
	ce.outageWithEtcdWrite(sliceA.Name, sliceWithEndpoints(sliceA.Name, all[1:]))

	restart := time.Now()
	if err := ce.c.StartAPIServer(ce.ctx, 2*time.Minute); err != nil {
		t.Fatalf("restart kube-apiserver: %v", err)
	}
	ready := time.Now()
	sliceB.Endpoints = all[2:]
	ce.putSlice(sliceB, ready)
	t.Logf("kube-apiserver ready again %v after its start; change B written through the API at once",
		ready.Sub(restart).Round(time.Millisecond))
	ce.waitAnswering(watchResumeTimeout, addrA, podNames(all[1:])...)
	t.Logf("change A (etcd, during the outage) reached traffic %v after kube-apiserver was ready",
		time.Since(ready).Round(time.Millisecond))
	ce.waitAnswering(watchResumeTimeout, addrB, all[2].TargetRef.Name)
	t.Logf("change B (API, after the restart) reached traffic %v after it was written",
		time.Since(ready).Round(time.Millisecond))

	traffic.finish(t)
	health.finish(t)
}

// sliceWithEndpoints is an etcd mutation that sets the endpoints of the
// EndpointSlice it is given.
func sliceWithEndpoints(name string, eps []discovery.Endpoint) func(runtime.Object) error {
	return func(obj runtime.Object) error {
		s, ok := obj.(*discovery.EndpointSlice)
		if !ok || s.Name != name {
			return fmt.Errorf("want EndpointSlice %s, got %T", name, obj)
		}
		s.Endpoints = eps
		return nil
	}
}

// outageWithEtcdWrite stops kube-apiserver for outageDuration and, while it
// is down, changes the named EndpointSlice in etcd with mutate.
func (ce *clusterEnv) outageWithEtcdWrite(name string, mutate func(runtime.Object) error) {
	ce.t.Helper()
	if err := ce.c.StopAPIServer(); err != nil {
		ce.t.Fatal(err)
	}
	stopped := time.Now()
	rev, err := ce.c.UpdateInEtcd(ce.ctx, "endpointslices", testNS, name, mutate)
	if err != nil {
		ce.t.Fatalf("change A in etcd during the outage: %v", err)
	}
	ce.t.Logf("kube-apiserver stopped; change A written to etcd (revision %d) while it is down", rev)
	// The outage is a span of time, not a state to wait for.
	time.Sleep(time.Until(stopped.Add(outageDuration)))
}

// healthzSample is one /healthz answer (or the error instead of one).
type healthzSample struct {
	at       time.Time
	code     int
	healthy  bool
	eligible bool
	err      error
}

// healthzPoller asks kproxy's /healthz (node namespace, port 10256) on a
// fixed period until finish.
type healthzPoller struct {
	stop, done chan struct{}
	mu         sync.Mutex
	samples    []healthzSample
}

func (ce *clusterEnv) pollHealthz(every time.Duration) *healthzPoller {
	p := &healthzPoller{stop: make(chan struct{}), done: make(chan struct{})}
	client := ce.c.HTTPClient(2 * time.Second)
	go func() {
		defer close(p.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			s := fetchHealth(client, "/healthz")
			p.mu.Lock()
			p.samples = append(p.samples, s)
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

// fetchHealth asks kproxy's health server for path once.
func fetchHealth(client *http.Client, path string) healthzSample {
	s := healthzSample{at: time.Now()}
	resp, err := client.Get("http://127.0.0.1:10256" + path)
	if err != nil {
		s.err = err
		return s
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		s.err = err
		return s
	}
	s.code = resp.StatusCode
	var st struct {
		Healthy      bool  `json:"healthy"`
		NodeEligible *bool `json:"nodeEligible"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		s.err = fmt.Errorf("HTTP %d, body %q: %w", resp.StatusCode, body, err)
		return s
	}
	s.healthy, s.eligible = st.Healthy, st.NodeEligible == nil || *st.NodeEligible
	return s
}

// finish stops polling and fails t unless every answer was 200 with a
// healthy proxier on an eligible node: nothing stayed queued for 60 s and
// the node was not being deleted, so upstream would have answered 200.
func (p *healthzPoller) finish(t *testing.T) {
	t.Helper()
	close(p.stop)
	<-p.done
	var ok int
	var bad []string
	for _, s := range p.samples {
		if s.err == nil && s.code == http.StatusOK && s.healthy && s.eligible {
			ok++
			continue
		}
		bad = append(bad, fmt.Sprintf("%s: HTTP %d healthy=%v nodeEligible=%v err=%v",
			s.at.Format("15:04:05.000"), s.code, s.healthy, s.eligible, s.err))
	}
	t.Logf("/healthz polled every %v over %v: %d answers 200, %d otherwise",
		healthzPoll, p.samples[len(p.samples)-1].at.Sub(p.samples[0].at).Round(time.Second), ok, len(bad))
	if len(bad) > 0 {
		t.Errorf("/healthz was not 200 while upstream's would have been; first of %d: %s", len(bad), bad[0])
	}
	if ok < 50 {
		t.Errorf("only %d /healthz answers; the check proves nothing", ok)
	}
}

// checkNodeDeletionFailsHealthz taints the Node as the Cluster Autoscaler
// does before deleting it: /healthz turns 503 (nodeEligible false) while
// /livez stays 200, and both are 200 again once the taint is gone. It shows
// the poller above can see a 503, and covers upstream's other 503 rule.
func (ce *clusterEnv) checkNodeDeletionFailsHealthz() {
	ce.t.Helper()
	client := ce.c.HTTPClient(2 * time.Second)
	expect := func(healthzCode int) func() error {
		return func() error {
			h, l := fetchHealth(client, "/healthz"), fetchHealth(client, "/livez")
			switch {
			case h.err != nil || l.err != nil:
				return fmt.Errorf("/healthz: %v, /livez: %v", h.err, l.err)
			case h.code != healthzCode || h.eligible != (healthzCode == http.StatusOK):
				return fmt.Errorf("/healthz HTTP %d nodeEligible=%v", h.code, h.eligible)
			case l.code != http.StatusOK || !l.healthy:
				return fmt.Errorf("/livez HTTP %d healthy=%v", l.code, l.healthy)
			}
			return nil
		}
	}
	tainted := time.Now()
	ce.setNodeTaints([]v1.Taint{{Key: toBeDeletedTaint, Value: "1", Effect: v1.TaintEffectNoSchedule}})
	ce.eventually(20*time.Second, "/healthz 503 and /livez 200 on a node being deleted", expect(http.StatusServiceUnavailable))
	untainted := time.Now()
	ce.setNodeTaints(nil)
	ce.eventually(20*time.Second, "/healthz 200 once the node is kept", expect(http.StatusOK))
	ce.t.Logf("node tainted %s: /healthz 503 (nodeEligible false), /livez 200 within %v; untainted: /healthz 200 within %v",
		toBeDeletedTaint, untainted.Sub(tainted).Round(time.Millisecond), time.Since(untainted).Round(time.Millisecond))
}

func (ce *clusterEnv) setNodeTaints(taints []v1.Taint) {
	ce.t.Helper()
	nodes := ce.c.Client.CoreV1().Nodes()
	node, err := nodes.Get(ce.ctx, nodeName, metav1.GetOptions{})
	if err != nil {
		ce.t.Fatalf("get node: %v", err)
	}
	node.Spec.Taints = taints
	if _, err := nodes.Update(ce.ctx, node, metav1.UpdateOptions{}); err != nil {
		ce.t.Fatalf("update node taints: %v", err)
	}
}
