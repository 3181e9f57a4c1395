package e2e

import (
	"errors"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/test/probe"
)

// TestIgnoredServicesGetNoRules checks the Services kproxy must leave alone,
// as upstream does: another proxy's (service-proxy-name label), headless and
// ExternalName ones. A normal Service next to them proves kproxy synced.
func TestIgnoredServicesGetNoRules(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		e := newEnv(t, envOptions{Mode: mode})
		w := e.w
		normal := service("normal", "10.96.0.80")
		sharded := service("sharded", "10.96.0.81")
		sharded.Labels = map[string]string{"service.kubernetes.io/service-proxy-name": "other-proxy"}
		headless := service("headless", "None")
		external := service("external", "10.96.0.83")
		external.Spec.Type = v1.ServiceTypeExternalName
		external.Spec.ExternalName = "example.invalid"
		eps := func(s *v1.Service) any { return slice(s, "a", endpoint(w, w.Pods[1])) }
		e.start(normal, eps(normal), sharded, eps(sharded), headless, eps(headless), external, eps(external))
		e.waitAnswer(w.Pods[0].Netns, "10.96.0.80:80")
		rules := e.save("nat") + e.save("filter") + e.nftList("ip")
		for _, name := range []string{"e2e/sharded", "e2e/headless", "e2e/external"} {
			if strings.Contains(rules, name) {
				t.Errorf("kproxy wrote rules for %s, which it must ignore", name)
			}
		}
	})
}

// TestNodePortAddressesRestrictWhereNodePortsAnswer runs kproxy with a
// restricting --nodeport-addresses: the NodePort answers on the node's
// 192.168.50.1 but not on its 10.100.0.1 (the link to node2). "primary" is the
// Node object's InternalIP, 192.168.50.1.
func TestNodePortAddressesRestrictWhereNodePortsAnswer(t *testing.T) {
	t.Parallel()
	for _, flag := range []string{"192.168.50.0/24", "primary"} {
		t.Run(flag, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{KproxyArgs: []string{"--nodeport-addresses", flag}})
			w := e.w
			svc := service("np", "10.96.0.84", withNodePort(30084))
			e.start(svc, slice(svc, "a", endpoint(w, w.Pods[1])))
			e.waitAnswer(w.Client, "192.168.50.1:30084")
			_, err := probe.TCP(w.RemotePods[0].Netns, "10.100.0.1:30084", 2*time.Second)
			if err == nil {
				t.Fatal("NodePort answered on 10.100.0.1, outside --nodeport-addresses")
			}
			if !errors.Is(err, probe.ErrRefused) {
				t.Errorf("want the node's own refusal (nothing listens on 10.100.0.1:30084), got %v", err)
			}
		})
	}
}
