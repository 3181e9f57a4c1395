package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kproxy/kproxy/test/kerneltest"
	"github.com/kproxy/kproxy/test/probe"
)

// TestIPTablesBackendFollowsKubelet starts kproxy on a node whose kubelet
// left its canary chain in one backend while the other backend holds more
// rules (so only the kubelet rule can pick the right one): kproxy must log
// that backend, write its rules there and nowhere else, and serve traffic.
// iptables-legacy takes the xtables lock; kproxy and the test use a private
// lock file (XTABLES_LOCKFILE), never the host's /run/xtables.lock.
func TestIPTablesBackendFollowsKubelet(t *testing.T) {
	t.Parallel()
	kerneltest.NeedTools(t, "iptables backend detection test", "iptables-legacy", "iptables-nft")
	for _, tt := range []struct{ backend, other string }{{"legacy", "nft"}, {"nft", "legacy"}} {
		t.Run(tt.backend, func(t *testing.T) {
			t.Parallel()
			lock := "XTABLES_LOCKFILE=" + filepath.Join(t.TempDir(), "xtables.lock")
			e := newEnv(t, envOptions{})
			w := e.w
			xt := func(backend string, args ...string) string {
				return e.run(w.Node, append([]string{"env", lock, "iptables-" + backend}, args...)...)
			}
			xt(tt.backend, "-t", "mangle", "-N", "KUBE-KUBELET-CANARY")
			xt(tt.other, "-N", "KPX-OTHER")
			for range 5 {
				xt(tt.other, "-A", "KPX-OTHER", "-j", "RETURN")
			}
			web := service("web", "10.96.0.90")
			e.apply(web, slice(web, "a", endpoint(w, w.Pods[1]), endpoint(w, w.Pods[2])))
			p, err := w.Start(w.Node, append([]string{"env", lock}, e.kproxyArgs()...)...)
			if err != nil {
				t.Fatalf("start kproxy: %v", err)
			}
			e.kproxy = p
			e.waitAnswer(w.Pods[0].Netns, "10.96.0.90:80")
			e.waitSynced()

			line := logLine(p.Output(), "Detected iptables backend")
			if !strings.Contains(line, `backend="`+tt.backend+`"`) || !strings.Contains(line, "KUBE-KUBELET-CANARY") {
				t.Errorf("detection log %q does not name %s and the kubelet chain", line, tt.backend)
			}
			t.Logf("kproxy: %s", line)
			save := func(backend string) string {
				return e.run(w.Node, "env", lock, "iptables-"+backend+"-save", "-t", "nat")
			}
			if s := save(tt.backend); !strings.Contains(s, "-A KUBE-SERVICES") || !strings.Contains(s, "e2e/web:p cluster IP") {
				t.Errorf("iptables-%s-save -t nat lacks kproxy's rules:\n%s", tt.backend, s)
			}
			if s := save(tt.other); strings.Contains(s, "KUBE-SERVICES") {
				t.Errorf("kproxy wrote into iptables-%s too:\n%s", tt.other, s)
			}
			if s := e.run(w.Node, "env", lock, "ip6tables-"+tt.backend+"-save", "-t", "nat"); !strings.Contains(s, ":KUBE-SERVICES") {
				t.Errorf("ip6tables-%s-save -t nat lacks kproxy's chains:\n%s", tt.backend, s)
			}
			if s := e.run(w.Node, "env", lock, "ip6tables-"+tt.other+"-save", "-t", "nat"); strings.Contains(s, "KUBE-SERVICES") {
				t.Errorf("kproxy's IPv6 rules went to ip6tables-%s:\n%s", tt.other, s)
			}
			answers, err := probe.TCPMany(w.Pods[0].Netns, "10.96.0.90:80", 50, probeTimeout)
			if err != nil {
				t.Errorf("traffic through %s rules: %v", tt.backend, err)
			}
			t.Logf("50 connections through the %s rules: answered by %v", tt.backend, answers)
		})
	}
}

// logLine returns the first line of out containing substr, "" if none.
func logLine(out, substr string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, substr) {
			return line
		}
	}
	return ""
}
