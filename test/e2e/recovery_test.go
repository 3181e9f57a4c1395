package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/kproxy/kproxy/test/probe"
)

// TestFlushedTablesAreRewritten flushes every table in the node namespace, as
// a firewall reload does: the canary chains disappear and kproxy must rewrite
// its rules within about one syncPeriod (5 s in these tests).
func TestFlushedTablesAreRewritten(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	w := e.w
	svc := service("web", "10.96.0.60")
	e.start(svc, slice(svc, "a", endpoint(w, w.Pods[1]), endpoint(w, w.Pods[2])))
	e.waitAnswer(w.Pods[0].Netns, "10.96.0.60:80")
	for _, table := range []string{"nat", "filter", "mangle"} {
		e.run(w.Node, "iptables", "-t", table, "-F")
		e.run(w.Node, "iptables", "-t", table, "-X")
	}
	if strings.Contains(e.save("nat"), "KUBE-SERVICES") {
		t.Fatal("flush did not remove the rules; the test proves nothing")
	}
	if _, err := probe.TCP(w.Pods[0].Netns, "10.96.0.60:80", time.Second); err == nil {
		t.Fatal("service still answers after the flush; the test proves nothing")
	}
	e.eventually(20*time.Second, "rules rewritten after the flush", func() error {
		_, err := probe.TCP(w.Pods[0].Netns, "10.96.0.60:80", probeTimeout)
		return err
	})
	if !strings.Contains(e.kproxy.Output(), "Rules were removed by someone else") ||
		!strings.Contains(e.kproxy.Output(), "nat/KUBE-PROXY-CANARY") {
		t.Error("kproxy did not log why it rewrote the rules")
	}
}

// TestLocalhostNodePort checks that a NodePort answers on 127.0.0.1 inside the
// node (route_localnet is enabled for it) with the KUBE-FIREWALL guard in place.
func TestLocalhostNodePort(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	w := e.w
	svc := service("web", "10.96.0.61", withNodePort(30061))
	e.start(svc, slice(svc, "a", endpoint(w, w.Pods[0]), endpoint(w, w.Pods[1])))
	a := e.waitAnswer(w.Node, "127.0.0.1:30061")
	if a.Pod != w.Pods[0].Name && a.Pod != w.Pods[1].Name {
		t.Errorf("localhost NodePort answered by %q", a.Pod)
	}
	if got := strings.TrimSpace(e.run(w.Node, "sysctl", "-n", "net.ipv4.conf.all.route_localnet")); got != "1" {
		t.Errorf("route_localnet = %s in the node namespace, want 1", got)
	}
	if !strings.Contains(e.save("filter"), `"block incoming localnet connections"`) {
		t.Error("the KUBE-FIREWALL localnet guard rule is missing")
	}
}
