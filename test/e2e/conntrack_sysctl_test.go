package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kproxy/kproxy/test/kerneltest"
)

// conntrackConfig is a KubeProxyConfiguration whose conntrack section and
// oomScoreAdj differ from both upstream's defaults and a new namespace's values.
// maxPerCore asks for more than any host limit, so kproxy has to meet the
// read-only nf_conntrack_max. oomScoreAdj is positive because lowering it
// needs CAP_SYS_RESOURCE, which a test machine may not grant.
const conntrackConfig = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: %s
clusterCIDR: 10.244.0.0/16
oomScoreAdj: 500
conntrack:
  maxPerCore: 1048576
  tcpEstablishedTimeout: 1h
  tcpCloseWaitTimeout: 90s
  tcpBeLiberal: true
  udpTimeout: 45s
  udpStreamTimeout: 150s
`

// TestConntrackSysctlsFromConfig starts kproxy with a configuration file and
// reads back, inside the node namespace, the per-namespace conntrack sysctls it
// must set, and its own oom_score_adj. nf_conntrack_max is read-only outside
// the initial network namespace: kproxy must leave it (and the global hashsize)
// alone and keep running.
func TestConntrackSysctlsFromConfig(t *testing.T) {
	t.Parallel()
	mode := "iptables"
	if os.Getenv("KPROXY_E2E_PROXY_MODE") == "ipvs" {
		mode = "ipvs"
	}
	cfgFile := filepath.Join(t.TempDir(), "config.conf")
	if err := os.WriteFile(cfgFile, fmt.Appendf(nil, conntrackConfig, mode), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{KproxyArgs: []string{"--config", cfgFile}})
	w := e.w
	want := map[string]string{
		"net.netfilter.nf_conntrack_tcp_timeout_established": "3600",
		"net.netfilter.nf_conntrack_tcp_timeout_close_wait":  "90",
		"net.netfilter.nf_conntrack_tcp_be_liberal":          "1",
		"net.netfilter.nf_conntrack_udp_timeout":             "45",
		"net.netfilter.nf_conntrack_udp_timeout_stream":      "150",
	}
	for key, v := range want {
		if got := e.nodeSysctl(key); got == v {
			t.Fatalf("%s is already %s in a new namespace; the test proves nothing", key, v)
		}
	}
	nodeMax := e.nodeSysctl("net.netfilter.nf_conntrack_max")
	hostMax, hostHashsize := readTrimmed(t, "/proc/sys/net/netfilter/nf_conntrack_max"),
		readTrimmed(t, "/sys/module/nf_conntrack/parameters/hashsize")

	svc := service("web", "10.96.0.70")
	e.start(svc, slice(svc, "a", endpoint(w, w.Pods[0])))
	e.waitAnswer(w.Pods[1].Netns, "10.96.0.70:80") // started, and went on past the read-only limit
	for key, v := range want {
		if got := e.nodeSysctl(key); got != v {
			t.Errorf("%s = %s in the node namespace, want %s", key, got, v)
		}
	}
	if got := e.nodeSysctl("net.netfilter.nf_conntrack_max"); got != nodeMax {
		t.Errorf("nf_conntrack_max in the node namespace changed from %s to %s", nodeMax, got)
	}
	if got := readTrimmed(t, "/proc/sys/net/netfilter/nf_conntrack_max"); got != hostMax {
		t.Errorf("the test host's nf_conntrack_max changed from %s to %s", hostMax, got)
	}
	if got := readTrimmed(t, "/sys/module/nf_conntrack/parameters/hashsize"); got != hostHashsize {
		t.Errorf("conntrack hashsize changed from %s to %s", hostHashsize, got)
	}
	if out := e.kproxy.Output(); !strings.Contains(out, "net.netfilter.nf_conntrack_max") || !strings.Contains(out, "left to the host") {
		t.Error("kproxy did not log that nf_conntrack_max is left to the host")
	}
	e.checkOOMScoreAdj(500)
}

// nodeSysctl reads a sysctl inside the node namespace.
func (e *env) nodeSysctl(key string) string {
	e.t.Helper()
	return strings.TrimSpace(e.run(e.w.Node, "sysctl", "-n", key))
}

// checkOOMScoreAdj checks the running kproxy's own oom_score_adj (ip netns
// exec replaces itself with kproxy, so the process id is kproxy's).
func (e *env) checkOOMScoreAdj(want int) {
	e.t.Helper()
	proc := fmt.Sprintf("/proc/%d", e.kproxy.Pid())
	if readTrimmed(e.t, "/proc/self/oom_score_adj") == strconv.Itoa(want) {
		e.t.Fatalf("the test process already has oom_score_adj %d; the check proves nothing", want)
	}
	if comm := readTrimmed(e.t, proc+"/comm"); comm != filepath.Base(kproxyBin) {
		e.t.Fatalf("process %s is %q, not kproxy", proc, comm)
	}
	e.eventually(5*time.Second, "oom_score_adj set", func() error {
		if got := readTrimmed(e.t, proc+"/oom_score_adj"); got != strconv.Itoa(want) {
			return fmt.Errorf("oom_score_adj = %s, want %d", got, want)
		}
		return nil
	})
}

func readTrimmed(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestInitOnlySetsHostAndExits runs kproxy --init-only in the node namespace:
// it must apply the conntrack settings and exit 0 without writing rules.
func TestInitOnlySetsHostAndExits(t *testing.T) {
	t.Parallel()
	cfgFile := filepath.Join(t.TempDir(), "config.conf")
	if err := os.WriteFile(cfgFile, fmt.Appendf(nil, conntrackConfig, "iptables"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{})
	const key = "net.netfilter.nf_conntrack_udp_timeout"
	if got := e.nodeSysctl(key); got == "45" {
		t.Fatalf("%s is already 45 in a new namespace; the test proves nothing", key)
	}
	e.run(e.w.Node, kproxyBin, "--init-only", "--config", cfgFile, "--hostname-override", "kpx-node",
		"--kubeconfig", "/nonexistent/kubeconfig")
	if got := e.nodeSysctl(key); got != "45" {
		t.Errorf("%s = %s after --init-only, want 45", key, got)
	}
	if nat := e.save("nat"); strings.Contains(nat, "KUBE-SERVICES") {
		t.Errorf("--init-only wrote rules:\n%s", nat)
	}
}

// TestLiveBeLiberalLeavesOutInvalidDrop sets nf_conntrack_tcp_be_liberal in
// the node namespace before kproxy starts, with nothing in its
// configuration: as upstream reads the live sysctl, KUBE-FORWARD must then
// have no INVALID-state DROP rule.
func TestLiveBeLiberalLeavesOutInvalidDrop(t *testing.T) {
	if os.Getenv("KPROXY_E2E_PROXY_MODE") == "ipvs" {
		kerneltest.RunsElsewhere(t, "in iptables mode (test/e2e on the host): an iptables-mode rule; this run is IPVS mode")
	}
	t.Parallel()
	e := newEnv(t, envOptions{})
	w := e.w
	e.run(w.Node, "sysctl", "-w", "net.netfilter.nf_conntrack_tcp_be_liberal=1")
	svc := service("liberal", "10.96.0.71")
	e.start(svc, slice(svc, "a", endpoint(w, w.Pods[0])))
	e.waitForRule("filter", `-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules"`)
	if filter := e.save("filter"); strings.Contains(filter, "--ctstate INVALID -j DROP") {
		t.Errorf("be_liberal is set, yet KUBE-FORWARD drops INVALID packets:\n%s", filter)
	}
}
