package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kproxy/kproxy/test/netns"
)

// syncPeriod is kproxy's syncPeriod in these worlds (30 s deployed): the
// retry interval after a failed sync and the tamper monitor's interval.
const syncPeriod = 5 * time.Second

// env is one test's world: namespaces, pod servers, a manifests directory and kproxy running in the node namespace.
type env struct {
	t      *testing.T
	w      *netns.World
	dir    string
	kproxy *netns.Process
	extra  []string
	// mode is kproxy's --proxy-mode: iptables, nftables or ipvs.
	mode string
}

type envOptions struct {
	// SCTP also starts SCTP listeners in the pods.
	SCTP bool
	// KproxyArgs are added to kproxy's command line.
	KproxyArgs []string
	// Mode is the proxy mode (forEachMode's); empty means envMode().
	Mode string
}

// envMode is the mode of tests that do not run per mode: iptables, or what
// KPROXY_E2E_PROXY_MODE says (ipvs in the qemu guest).
func envMode() string {
	if m := os.Getenv("KPROXY_E2E_PROXY_MODE"); m != "" {
		return m
	}
	return "iptables"
}

// trafficModes are the modes the traffic tests run in: iptables and
// nftables on this machine's kernel, or only KPROXY_E2E_PROXY_MODE's (ipvs
// in the qemu guest, which has IPVS).
func trafficModes() []string {
	if m := os.Getenv("KPROXY_E2E_PROXY_MODE"); m != "" {
		return []string{m}
	}
	return []string{"iptables", "nftables"}
}

// forEachMode runs fn as a parallel subtest per traffic mode: the same
// checks against every backend.
func forEachMode(t *testing.T, fn func(t *testing.T, mode string)) {
	t.Helper()
	t.Parallel()
	for _, mode := range trafficModes() {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			fn(t, mode)
		})
	}
}

// newEnv builds the world and starts pod servers; start then runs kproxy.
func newEnv(t *testing.T, opts envOptions) *env {
	t.Helper()
	w := netns.NewForTest(t, netns.Options{})
	ports := netns.ServerPorts{TCP: []int{podPort}, UDP: []int{podPort}}
	if opts.SCTP {
		ports.SCTP = []int{podPort}
	}
	if _, err := w.StartPodservers(podserverBin, ports); err != nil {
		t.Fatalf("start pod servers: %v", err)
	}
	if opts.Mode == "" {
		opts.Mode = envMode()
	}
	e := &env{t: t, w: w, dir: t.TempDir(), extra: opts.KproxyArgs, mode: opts.Mode}
	t.Cleanup(func() {
		if t.Failed() && e.kproxy != nil {
			t.Logf("kproxy output:\n%s", tail(e.kproxy.Output(), 60))
			e.dumpState()
		}
	})
	return e
}

// start writes objs as manifests and starts kproxy on them.
func (e *env) start(objs ...any) {
	e.t.Helper()
	e.apply(objs...)
	e.startKproxy()
}

// apply replaces the manifests with objs (the Node object is always included) atomically.
func (e *env) apply(objs ...any) {
	e.t.Helper()
	var buf bytes.Buffer
	for _, o := range append([]any{nodeObject(e.w)}, objs...) {
		b, err := yaml.Marshal(o)
		if err != nil {
			e.t.Fatalf("marshal manifest: %v", err)
		}
		buf.WriteString("---\n")
		buf.Write(b)
	}
	tmp := filepath.Join(e.dir, ".objects.yaml.tmp")
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(e.dir, "objects.yaml")); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) kproxyArgs() []string {
	args := []string{kproxyBin, "--manifests", e.dir, "--manifests-poll-interval", "100ms",
		"--hostname-override", nodeName, "--cluster-cidr", "10.244.0.0/16,fd00:10:244::/48",
		"--iptables-min-sync-period", "0s", "--iptables-sync-period", syncPeriod.String(),
		"--healthz-bind-address", "0.0.0.0:10256", "--metrics-bind-address", "127.0.0.1:10249", "-v", "2"}
	switch e.mode {
	case "ipvs":
		args = append(args, "--proxy-mode", "ipvs", "--ipvs-min-sync-period", "0s", "--ipvs-sync-period", syncPeriod.String())
	case "nftables":
		args = append(args, "--proxy-mode", "nftables")
	}
	return append(args, e.extra...)
}

func (e *env) startKproxy() {
	e.t.Helper()
	p, err := e.w.Start(e.w.Node, e.kproxyArgs()...)
	if err != nil {
		e.t.Fatalf("start kproxy: %v", err)
	}
	e.kproxy = p
}

// killKproxy ends kproxy with SIGKILL, as a crash or an OOM kill would.
func (e *env) killKproxy() {
	e.t.Helper()
	if err := e.kproxy.Signal(syscall.SIGKILL); err != nil {
		e.t.Fatalf("kill kproxy: %v", err)
	}
	select {
	case <-e.kproxy.Done():
	case <-time.After(10 * time.Second):
		e.t.Fatal("kproxy did not exit after SIGKILL")
	}
}

// run executes a command in a namespace of the world and returns its output.
func (e *env) run(ns string, argv ...string) string {
	e.t.Helper()
	out, err := e.w.Exec(ns, argv...)
	if err != nil {
		e.t.Fatalf("%s in %s: %v\n%s", strings.Join(argv, " "), ns, err, out)
	}
	return string(out)
}

// save is iptables-save of one table in the node namespace.
func (e *env) save(table string) string {
	return e.run(e.w.Node, "iptables-save", "-t", table)
}

// eventually polls fn until it returns nil or the deadline passes.
func (e *env) eventually(timeout time.Duration, what string, fn func() error) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = fn(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not true after %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitForProgrammed waits until the node's rules hold the mode's substring:
// rule is looked for in iptables-save of table (iptables and IPVS modes),
// nft in `nft list table ip kube-proxy` (nftables mode).
func (e *env) waitForProgrammed(table, rule, nft string) {
	e.t.Helper()
	if e.mode != "nftables" {
		e.waitForRule(table, rule)
		return
	}
	e.eventually(settleTimeout, "nftables "+nft, func() error {
		if strings.Contains(e.nftList("ip"), nft) {
			return nil
		}
		return fmt.Errorf("no %q in table ip kube-proxy", nft)
	})
}

// nftList is `nft list table <family> kube-proxy` in the node namespace ("" when there is none).
func (e *env) nftList(family string) string {
	out, err := e.w.Exec(e.w.Node, "nft", "list", "table", family, "kube-proxy")
	if err != nil {
		return ""
	}
	return string(out)
}

// waitForRule waits until the node's table has a rule containing substr (iptables-save).
func (e *env) waitForRule(table, substr string) {
	e.t.Helper()
	e.eventually(settleTimeout, "rule "+substr, func() error {
		if strings.Contains(e.save(table), substr) {
			return nil
		}
		return fmt.Errorf("no %q in %s table", substr, table)
	})
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// dumpState logs the node's nat rules (and IPVS state or the nft table) for a failing test.
func (e *env) dumpState() {
	out, _ := e.w.Exec(e.w.Node, "iptables-save", "-t", "nat")
	e.t.Logf("node nat table:\n%s", tail(string(out), 80))
	switch e.mode {
	case "nftables":
		e.t.Logf("nft list table ip kube-proxy:\n%s", tail(e.nftList("ip"), 120))
	case "ipvs":
		for _, argv := range [][]string{{"ipvsadm", "-Ln"}, {"ipset", "list"}} {
			out, _ := e.w.Exec(e.w.Node, argv...)
			e.t.Logf("%s:\n%s", strings.Join(argv, " "), tail(string(out), 80))
		}
	}
}
