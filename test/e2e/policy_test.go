package e2e

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	discovery "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"

	"github.com/kproxy/kproxy/test/probe"
)

// notServing is an endpoint being shut down that no longer serves: never used.
func notServing() epOpt {
	return func(e *discovery.Endpoint) {
		e.Conditions = discovery.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(false), Terminating: ptr.To(true)}
	}
}

// TestInternalLocalReachesOnlyLocalEndpoints checks ITP=Local: a pod's
// ClusterIP traffic goes only to endpoints on its own node.
func TestInternalLocalReachesOnlyLocalEndpoints(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		e := newEnv(t, envOptions{Mode: mode})
		w := e.w
		svc := service("itp", "10.96.1.10", withInternalLocal())
		e.start(svc, slice(svc, "a", endpoint(w, w.Pods[1]), endpoint(w, w.Pods[2]),
			endpoint(w, w.RemotePods[0]), endpoint(w, w.RemotePods[1])))
		const addr = "10.96.1.10:80"
		e.waitAnswer(w.Pods[0].Netns, addr)
		// With Cluster policy 4 endpoints would all show up in 60 connections (P miss < 4*(3/4)^60 ≈ 1e-7).
		for _, a := range e.requirePods(w.Pods[0].Netns, addr, 60, w.Pods[1], w.Pods[2]) {
			if a.SeenSource != w.Pods[0].IPv4.String() {
				t.Fatalf("%s saw %s; pod-to-pod service traffic must keep the pod source %s", a.Pod, a.SeenSource, w.Pods[0].IPv4)
			}
		}
	})
}

// TestInternalLocalWithOnlyRemoteEndpointsDrops checks ITP=Local when all
// endpoints are remote: ClusterIP traffic is dropped (not rejected, and not
// sent to the remote endpoints).
func TestInternalLocalWithOnlyRemoteEndpointsDrops(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		e := newEnv(t, envOptions{Mode: mode})
		w := e.w
		local := service("itp", "10.96.1.11", withInternalLocal())
		// A Cluster-policy twin shows when the rules are in place and that the endpoints do answer.
		cluster := service("twin", "10.96.1.12")
		remote := []discovery.Endpoint{endpoint(w, w.RemotePods[0]), endpoint(w, w.RemotePods[1])}
		e.start(local, slice(local, "a", remote...), cluster, slice(cluster, "a", remote...))
		e.waitAnswer(w.Pods[0].Netns, "10.96.1.12:80")
		e.waitForProgrammed("filter", "e2e/itp:p has no local endpoints", "10.96.1.11 . tcp . 80")

		// Without the DROP the packet would leave by the node's default route and die silently at the client.
		e.requireDroppedBy([]string{"e2e/itp:p has no local endpoints", "-j DROP"}, w.Pods[0].Netns, "10.96.1.11:80")
	})
}

// TestSessionAffinityPinsClient checks sessionAffinity ClientIP: every
// connection from one client lands on the same pod, while a twin service
// without affinity spreads the same client's connections.
func TestSessionAffinityPinsClient(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		e := newEnv(t, envOptions{Mode: mode})
		w := e.w
		sticky := service("sticky", "10.96.1.20", withAffinity(600))
		plain := service("plain", "10.96.1.21")
		eps := []discovery.Endpoint{endpoint(w, w.Pods[0]), endpoint(w, w.Pods[1]), endpoint(w, w.Pods[2]), endpoint(w, w.RemotePods[0])}
		e.start(sticky, slice(sticky, "a", eps...), plain, slice(plain, "a", eps...))
		e.waitAnswer(w.Client, "10.96.1.20:80")
		e.waitAnswer(w.Client, "10.96.1.21:80")

		const n = 30
		if counts := podCounts(e.answers(w.Client, "10.96.1.20:80", n)); len(counts) != 1 {
			t.Errorf("with ClientIP affinity %d connections from one client reached %d pods (%v), want 1", n, len(counts), counts)
		}
		// Without affinity, 30 connections over 4 endpoints all hit one pod with P = 4*(1/4)^30.
		if counts := podCounts(e.answers(w.Client, "10.96.1.21:80", n)); len(counts) < 2 {
			t.Errorf("without affinity %d connections reached only %v; want a spread", n, counts)
		}
	})
}

// TestTopologyHintsKeepTrafficInZone checks zone hints: when every ready
// endpoint is hinted and some are for this node's zone, only those answer;
// when one endpoint has no hints, hints are ignored and all answer.
func TestTopologyHintsKeepTrafficInZone(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		e := newEnv(t, envOptions{Mode: mode})
		w := e.w
		zonal := service("zonal", "10.96.1.30")
		partial := service("partial", "10.96.1.31")
		e.start(
			zonal, slice(zonal, "a",
				endpoint(w, w.Pods[0], hintZones(zoneA)), endpoint(w, w.RemotePods[0], hintZones(zoneA)),
				endpoint(w, w.Pods[1], hintZones("zone-b")), endpoint(w, w.RemotePods[1], hintZones("zone-b"))),
			partial, slice(partial, "a",
				endpoint(w, w.Pods[0], hintZones(zoneA)), endpoint(w, w.Pods[1], hintZones("zone-b")),
				endpoint(w, w.RemotePods[0])),
		)
		e.waitAnswer(w.Pods[2].Netns, "10.96.1.30:80")
		e.waitAnswer(w.Pods[2].Netns, "10.96.1.31:80")

		// Unfiltered, 4 endpoints would all show up in 60 connections (P miss < 1e-7).
		e.requirePods(w.Pods[2].Netns, "10.96.1.30:80", 60, w.Pods[0], w.RemotePods[0])
		// 3 endpoints, 60 connections: P(one never chosen) < 3*(2/3)^60 ≈ 1e-10.
		e.requirePods(w.Pods[2].Netns, "10.96.1.31:80", 60, w.Pods[0], w.Pods[1], w.RemotePods[0])
	})
}

// TestTerminatingEndpointsFallback checks the terminating fallback: with no
// ready endpoint, serving+terminating ones carry the traffic (non-serving
// ones never do); with some ready endpoint, terminating ones get nothing.
func TestTerminatingEndpointsFallback(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		e := newEnv(t, envOptions{Mode: mode})
		w := e.w
		draining := service("draining", "10.96.1.40")
		mixed := service("mixed", "10.96.1.41")
		e.start(
			draining, slice(draining, "a",
				endpoint(w, w.Pods[0], terminatingServing()), endpoint(w, w.RemotePods[0], terminatingServing()),
				endpoint(w, w.Pods[1], notServing())),
			mixed, slice(mixed, "a",
				endpoint(w, w.Pods[0]), endpoint(w, w.Pods[1], terminatingServing()),
				endpoint(w, w.RemotePods[0], terminatingServing())),
		)
		e.waitAnswer(w.Pods[2].Netns, "10.96.1.40:80")
		e.waitAnswer(w.Pods[2].Netns, "10.96.1.41:80")

		// 2 endpoints, 40 connections: P(one never chosen) = 2^-39; pod-2 (not serving) must never answer.
		e.requirePods(w.Pods[2].Netns, "10.96.1.40:80", 40, w.Pods[0], w.RemotePods[0])
		// Were terminating endpoints mixed in, 40 connections over 3 would miss them with P < 1e-7.
		e.requirePods(w.Pods[2].Netns, "10.96.1.41:80", 40, w.Pods[0])
	})
}

// TestHairpinIsMasqueraded checks a pod reaching itself through its own
// service: the connection works and the pod sees a masqueraded source, so
// its replies go back through the node's conntrack instead of to itself.
func TestHairpinIsMasqueraded(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		e := newEnv(t, envOptions{Mode: mode})
		w := e.w
		svc := service("self", "10.96.1.50")
		e.start(svc, slice(svc, "a", endpoint(w, w.Pods[0])))
		a := e.waitAnswer(w.Pods[0].Netns, "10.96.1.50:80")
		if a.Pod != w.Pods[0].Name {
			t.Fatalf("answered by %s, want %s", a.Pod, w.Pods[0].Name)
		}
		if a.SeenSource == w.Pods[0].IPv4.String() {
			t.Errorf("hairpin connection seen from the pod's own address %s; want a masqueraded source", a.SeenSource)
		}
	})
}

// TestLiveManifestChangesFollowed checks that traffic follows edits within
// seconds: an endpoint removed stops answering, one added starts, and a
// deleted service stops being served.
func TestLiveManifestChangesFollowed(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		e := newEnv(t, envOptions{Mode: mode})
		w := e.w
		svc := service("live", "10.96.1.60")
		const addr = "10.96.1.60:80"
		from := w.Pods[2].Netns
		e.start(svc, slice(svc, "a", endpoint(w, w.Pods[0]), endpoint(w, w.Pods[1])))
		e.waitAnswer(from, addr)
		e.requirePods(from, addr, 40, w.Pods[0], w.Pods[1])

		e.apply(svc, slice(svc, "a", endpoint(w, w.Pods[0])))
		e.waitPods(from, addr, 20, w.Pods[0])
		e.requirePods(from, addr, 40, w.Pods[0])

		e.apply(svc, slice(svc, "a", endpoint(w, w.Pods[0]), endpoint(w, w.RemotePods[0])))
		e.waitPods(from, addr, 40, w.Pods[0], w.RemotePods[0])

		e.apply()
		e.eventually(changeTimeout, "deleted service stops answering", func() error {
			a, err := probe.TCP(from, addr, dropTimeout/4)
			switch {
			case err == nil:
				return fmt.Errorf("still answered by %s", a.Pod)
			case !errors.Is(err, probe.ErrTimeout) && !errors.Is(err, probe.ErrRefused) && !errors.Is(err, probe.ErrUnreachable):
				return fmt.Errorf("unexpected failure: %w", err)
			}
			return nil
		})
		if nat := e.save("nat"); strings.Contains(nat, "e2e/live") {
			t.Errorf("deleted service still has nat rules:\n%s", nat)
		}
		if err := e.nftLiveLines("e2e/live"); err != nil {
			t.Errorf("deleted service: %v", err)
		}
	})
}
