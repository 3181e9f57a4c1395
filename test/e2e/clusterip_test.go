package e2e

import (
	"errors"
	"testing"
	"time"

	"github.com/kproxy/kproxy/test/probe"
)

const probeTimeout = 2 * time.Second

// TestClusterIPSpreadsAndKeepsPodSource checks a ClusterIP from a pod and from
// outside the cluster: every endpoint answers, the spread is within a
// statistical bound, pod sources are preserved and off-cluster sources are masqueraded.
func TestClusterIPSpreadsAndKeepsPodSource(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		e := newEnv(t, envOptions{Mode: mode})
		w := e.w
		svc := service("web", "10.96.0.10")
		e.start(svc, slice(svc, "a", endpoint(w, w.Pods[0]), endpoint(w, w.Pods[1]), endpoint(w, w.Pods[2])))
		e.eventually(settleTimeout, "ClusterIP answers", func() error {
			_, err := probe.TCP(w.Pods[0].Netns, "10.96.0.10:80", probeTimeout)
			return err
		})

		const n = 300
		counts, err := probe.TCPMany(w.Pods[0].Netns, "10.96.0.10:80", n, probeTimeout)
		if err != nil {
			t.Fatalf("%d connections through the ClusterIP: %v", n, err)
		}
		// Each of 3 endpoints gets Binomial(300, 1/3): mean 100, sd 8.2; [55, 145] is > 5 sd.
		for _, pod := range w.Pods {
			if c := counts[pod.Name]; c < 55 || c > 145 {
				t.Errorf("%s answered %d of %d connections, want about %d (all: %v)", pod.Name, c, n, n/3, counts)
			}
		}

		// A connection that lands on the calling pod itself is hairpin traffic and is masqueraded by design: skip those.
		var fromPod probe.Answer
		for i := 0; i < 50; i++ {
			a, err := probe.TCP(w.Pods[1].Netns, "10.96.0.10:80", probeTimeout)
			if err != nil {
				t.Fatal(err)
			}
			if a.Pod != w.Pods[1].Name {
				fromPod = a
				break
			}
		}
		if fromPod.SeenSource != w.Pods[1].IPv4.String() {
			t.Errorf("pod traffic must keep its source: backend saw %s, want %s", fromPod.SeenSource, w.Pods[1].IPv4)
		}
		fromClient, err := probe.TCP(w.Client, "10.96.0.10:80", probeTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if fromClient.SeenSource == w.Addrs.ClientV4.String() {
			t.Errorf("off-cluster traffic to a ClusterIP must be masqueraded, backend saw the client's %s", fromClient.SeenSource)
		}
	})
}

// TestServiceWithoutEndpointsIsRejected checks that a Service without endpoints
// answers at once with an ICMP reject, not a timeout.
func TestServiceWithoutEndpointsIsRejected(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		e := newEnv(t, envOptions{Mode: mode})
		w := e.w
		empty := service("empty", "10.96.0.20")
		e.start(empty, slice(empty, "a"))
		e.waitForProgrammed("filter", "e2e/empty:p has no endpoints", `comment "e2e/empty:p"`)
		start := time.Now()
		_, err := probe.TCP(w.Pods[0].Netns, "10.96.0.20:80", 5*time.Second)
		if !errors.Is(err, probe.ErrUnreachable) && !errors.Is(err, probe.ErrRefused) {
			t.Fatalf("want an immediate reject, got %v", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("reject took %v; REJECT must answer at once", d)
		}
	})
}
