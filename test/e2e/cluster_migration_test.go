package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
	"github.com/kproxy/kproxy/test/cluster"
	"github.com/kproxy/kproxy/test/kerneltest"
	"github.com/kproxy/kproxy/test/netns"
	"github.com/kproxy/kproxy/test/probe"
)

// migrationMarker is a no-op rule the test appends to KUBE-SERVICES after
// upstream kube-proxy stopped: kproxy's first full sync redeclares (flushes)
// the chain, so the marker's disappearance says kproxy has synced.
const migrationMarker = "kpx-migration-marker"

// nfacctMatch is an nfacct match in iptables-save output; see withoutNfacct.
var nfacctMatch = regexp.MustCompile(` -m nfacct --nfacct-name +\S+`)

// TestClusterMigrationFromUpstreamKubeProxy replaces a running upstream
// kube-proxy (iptables mode, v1.37.2) by kproxy on the same node and API
// objects: established connections keep working, new ones work, and kproxy's
// KUBE-* rules equal upstream's after normalization.
func TestClusterMigrationFromUpstreamKubeProxy(t *testing.T) {
	ce := newBareClusterEnv(t)
	w := ce.w
	if ce.c.Binaries.KubeProxy == "" {
		kerneltest.SkipOrFail(t, "migration test: no upstream kube-proxy binary (KPROXY_ETCD_BIN/KPROXY_APISERVER_BIN given without it)")
	}
	ce.createMigrationScenario()

	upstream := ce.startUpstreamKubeProxy()
	ce.waitAnswering(60*time.Second, "10.96.0.10:80", w.Pods[0].Name, w.Pods[1].Name, w.Pods[2].Name)
	ce.waitAnswer(w.Client, nodeAddr(w, testNodePort))
	clusterConn := ce.openLongLived(w.Pods[0].Netns, "10.96.0.10:80")
	nodePortConn := ce.openLongLived(w.Client, nodeAddr(w, testNodePort))
	// Upstream syncs IPv6 after IPv4: the snapshot waits for its IPv6
	// table to be complete (the nodeports jump is written last).
	ce.eventually(30*time.Second, "upstream kube-proxy's IPv6 sync", func() error {
		if !strings.Contains(ce.run(w.Node, "ip6tables-save", "-t", "nat"), "-j KUBE-NODEPORTS") {
			return fmt.Errorf("no KUBE-NODEPORTS jump in ip6tables nat yet")
		}
		return nil
	})
	before := ce.kubeState()
	requireScenarioRules(t, before)

	if err := upstream.Stop(10 * time.Second); err != nil {
		t.Logf("stop upstream kube-proxy: %v", err)
	}
	ce.run(w.Node, "iptables", "-t", "nat", "-A", "KUBE-SERVICES", "-m", "comment", "--comment", migrationMarker, "-j", "RETURN")
	ce.startDeployedKproxy("")
	ce.eventually(30*time.Second, "kproxy's first sync replaces KUBE-SERVICES", func() error {
		if strings.Contains(ce.save("nat"), migrationMarker) {
			return fmt.Errorf("marker still in nat KUBE-SERVICES")
		}
		return nil
	})

	for name, c := range map[string]*probe.Conn{"ClusterIP": clusterConn, "NodePort": nodePortConn} {
		got, err := c.Ping()
		if err != nil {
			t.Errorf("%s connection opened under upstream kube-proxy broke after kproxy's sync: %v", name, err)
		} else if got != c.First.Pod {
			t.Errorf("%s connection answered by %s, opened to %s", name, got, c.First.Pod)
		}
	}
	ce.waitAnswering(settleTimeout, "10.96.0.10:80", w.Pods[0].Name, w.Pods[1].Name, w.Pods[2].Name)
	ce.waitAnswer(w.Client, nodeAddr(w, testNodePort))
	ce.waitAnswer(w.Client, lbIngressIP+":80", probe.Src(w.Addrs.ClientV4.String()))
	ce.waitAnswer(w.Client, externalIP+":80")

	after := ce.kubeState()
	if after != before {
		t.Errorf("kproxy's KUBE-* rules differ from upstream kube-proxy's (normalized; - upstream, + kproxy):\n%s",
			lineDiff(before, after))
	}
}

// requireScenarioRules fails t unless state holds a rule of every kind the
// scenario asks for, so that the comparison cannot pass on empty tables.
func requireScenarioRules(t *testing.T, state string) {
	t.Helper()
	for _, want := range []string{
		`"e2e/web:p -> 10.244.1.13:8080" -j KUBE-SEP-`,              // 3 endpoints
		"-A KUBE-NODEPORTS ",                                        // NodePorts
		`"e2e/itp:p cluster IP" -m tcp --dport 80 -j KUBE-SVL-`,     // ITP=Local
		`"route LOCAL traffic for e2e/etp:p external destinations"`, // ETP=Local
		"--rcheck --seconds 600",                                    // ClientIP affinity
		`"e2e/empty:p has no endpoints"`,                            // no endpoints
		"-A KUBE-FW-",                                               // LB source ranges
		"-d " + lbIngressIP + " ",                                   // LB ingress IP
		"-d " + externalIP + " ",                                    // external IP
	} {
		if !strings.Contains(state, want) {
			t.Fatalf("upstream kube-proxy's rules lack %q:\n%s", want, state)
		}
	}
}

// newBareClusterEnv is newClusterEnv without kproxy: the control plane in the
// node namespace, deploy/'s ServiceAccount and RBAC, the Node and the test
// namespace.
func newBareClusterEnv(t *testing.T) *clusterEnv {
	t.Helper()
	return newBareClusterEnvWith(t, nil)
}

// newBareClusterEnvWith is newBareClusterEnv with extra kube-apiserver flags.
func newBareClusterEnvWith(t *testing.T, apiServerArgs []string) *clusterEnv {
	t.Helper()
	e := newEnv(t, envOptions{})
	c := cluster.StartForTest(t, cluster.Options{Netns: e.w.Node, APIServerArgs: apiServerArgs})
	t.Logf("control plane ready in %v", c.StartupTime)
	ce := &clusterEnv{env: e, c: c, ctx: t.Context()}
	for _, name := range []string{"serviceaccount.yaml", "rbac.yaml"} {
		manifest, err := os.ReadFile(filepath.Join(deployDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreateFromYAML(ce.ctx, manifest); err != nil {
			t.Fatalf("apply deploy/%s: %v", name, err)
		}
	}
	ce.createNode()
	ce.createNamespace(testNS)
	return ce
}

// createMigrationScenario writes one Service (and its endpoints) per
// service type and policy through the API.
func (ce *clusterEnv) createMigrationScenario() {
	w := ce.w
	local, remote := w.Pods, w.RemotePods
	client := w.Addrs.ClientV4.String()
	scenario := []struct {
		svc *v1.Service
		eps []discovery.Endpoint
	}{
		{service("web", "10.96.0.10"), eps(ce, local[0], local[1], local[2])},
		{service("np", "10.96.0.11", withNodePort(testNodePort)), eps(ce, local[0], local[1])},
		{service("etp", "10.96.0.12", withNodePort(30081), withExternalLocal(0)), eps(ce, local[0], remote[0])},
		{service("itp", "10.96.0.13", withInternalLocal()), eps(ce, local[1], remote[1])},
		{service("aff", "10.96.0.14", withAffinity(600)), eps(ce, local[0], local[2])},
		{service("empty", "10.96.0.15"), nil},
		{service("lb", "10.96.0.16", withLoadBalancer(lbIngressIP, 30082, client+"/32")), eps(ce, local[2], remote[2])},
		{service("ext", "10.96.0.17", withExternalIPs(externalIP)), eps(ce, local[0])},
	}
	for _, s := range scenario {
		status := s.svc.Status
		ce.createService(s.svc)
		if len(status.LoadBalancer.Ingress) > 0 {
			ce.setServiceStatus(s.svc.Name, status)
		}
		if s.eps != nil {
			ce.putSlice(slice(s.svc, "a", s.eps...), time.Now())
		}
	}
}

func eps(ce *clusterEnv, pods ...netns.Pod) []discovery.Endpoint {
	out := make([]discovery.Endpoint, 0, len(pods))
	for _, p := range pods {
		out = append(out, endpoint(ce.w, p))
	}
	return out
}

// setServiceStatus sets a Service's status through the status subresource
// (creation drops it), as a load-balancer controller would.
func (ce *clusterEnv) setServiceStatus(name string, status v1.ServiceStatus) {
	ce.t.Helper()
	api := ce.c.Client.CoreV1().Services(testNS)
	got, err := api.Get(ce.ctx, name, metav1.GetOptions{})
	if err != nil {
		ce.t.Fatalf("get service %s: %v", name, err)
	}
	got.Status = status
	if _, err := api.UpdateStatus(ce.ctx, got, metav1.UpdateOptions{}); err != nil {
		ce.t.Fatalf("service %s status: %v", name, err)
	}
}

// startUpstreamKubeProxy runs upstream kube-proxy in the node namespace with
// the configuration kproxy gets (deployedConfig), plus what a network
// namespace needs: conntrack sysctls left alone (nf_conntrack_max and the
// hashsize are not settable outside the initial namespace).
func (ce *clusterEnv) startUpstreamKubeProxy() *netns.Process {
	ce.t.Helper()
	conf, err := upstreamConfig(ce.c.Kubeconfig)
	if err != nil {
		ce.t.Fatal(err)
	}
	path := filepath.Join(ce.dir, "upstream.conf")
	if err := os.WriteFile(path, conf, 0o600); err != nil {
		ce.t.Fatal(err)
	}
	p, err := ce.w.Start(ce.w.Node, ce.c.Binaries.KubeProxy, "--config", path, "--hostname-override", nodeName, "-v", "2")
	if err != nil {
		ce.t.Fatalf("start upstream kube-proxy: %v", err)
	}
	ce.t.Cleanup(func() {
		if ce.t.Failed() {
			ce.t.Logf("upstream kube-proxy output:\n%s", tail(p.Output(), 60))
		}
	})
	return p
}

func upstreamConfig(kubeconfig string) ([]byte, error) {
	raw, err := deployedConfig(kubeconfig, false, "")
	if err != nil {
		return nil, err
	}
	var conf map[string]any
	if err := yaml.Unmarshal(raw, &conf); err != nil {
		return nil, fmt.Errorf("upstream config: %w", err)
	}
	conf["hostnameOverride"] = nodeName
	conf["conntrack"] = map[string]any{"maxPerCore": 0, "min": 0,
		"tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"}
	return yaml.Marshal(conf)
}

func (ce *clusterEnv) openLongLived(ns, addr string) *probe.Conn {
	ce.t.Helper()
	c, err := probe.OpenLongLived(ns, addr, probeTimeout)
	if err != nil {
		ce.t.Fatalf("long-lived connection to %s from %s: %v", addr, ns, err)
	}
	ce.t.Cleanup(func() { c.Close() })
	return c
}

// kubeState is the node's normalized nat and filter tables (IPv4 and IPv6)
// restricted to what kube-proxy owns; see kubeOwned.
func (ce *clusterEnv) kubeState() string {
	ce.t.Helper()
	var b strings.Builder
	for _, f := range []struct {
		save   string
		family v1.IPFamily
	}{{"iptables-save", v1.IPv4Protocol}, {"ip6tables-save", v1.IPv6Protocol}} {
		for _, table := range []string{"nat", "filter"} {
			raw := withoutNfacct(ce.run(ce.w.Node, f.save, "-t", table))
			norm, err := ruleset.Normalize([]byte(raw), f.family)
			if err != nil {
				ce.t.Fatalf("normalize %s -t %s: %v\n%s", f.save, table, err, raw)
			}
			fmt.Fprintf(&b, "# %s %s\n%s", f.family, table, kubeOwned(string(norm)))
		}
	}
	return b.String()
}

// kubeOwned keeps the lines of a normalized table that kube-proxy writes: the
// KUBE-* chain declarations, their rules, and rules of other chains that jump
// to a KUBE-* chain, with the per-service rules of dispatchChains sorted.
// What it drops, and why upstream and kproxy may legitimately differ there:
//   - KUBE-PROXY-CANARY and KUBE-KUBELET-CANARY (declarations and any rules):
//     monitoring chains whose presence depends on which program created
//     them and when (the kubelet's are not ours);
//
// Before normalizing, kubeState also removes upstream's nfacct accounting;
// see withoutNfacct.
func kubeOwned(norm string) string {
	var kept, run []string
	flush := func() {
		slices.Sort(run)
		kept, run = append(kept, run...), nil
	}
	for line := range strings.SplitSeq(norm, "\n") {
		if !ownedLine(line) {
			continue
		}
		if dispatchRule(line) {
			run = append(run, line)
			continue
		}
		flush()
		kept = append(kept, line)
	}
	flush()
	return strings.Join(kept, "\n") + "\n"
}

// dispatchChains are the chains where upstream writes one rule (or a few)
// per service port in the order it iterates its service map, which Go
// randomizes on every sync: two upstream runs on the same objects order them
// differently. The rules of different service ports match disjoint
// destinations and ports, so their order does not matter, and kubeOwned
// sorts each run of consecutive per-service rules in these chains (rules
// without a service comment, like KUBE-SERVICES' final jump to
// KUBE-NODEPORTS, stay where they are and end a run).
var dispatchChains = []string{"KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES", "KUBE-PROXY-FIREWALL"}

// serviceComment is the comment of a per-service rule: "namespace/name:port ...".
var serviceComment = regexp.MustCompile(`--comment "?[a-z0-9.-]+/[a-z0-9.-]+:`)

func dispatchRule(line string) bool {
	chain, _, _ := strings.Cut(strings.TrimPrefix(line, "-A "), " ")
	return strings.HasPrefix(line, "-A ") && slices.Contains(dispatchChains, chain) && serviceComment.MatchString(line)
}

func ownedLine(line string) bool {
	for _, canary := range []string{"KUBE-PROXY-CANARY", "KUBE-KUBELET-CANARY"} {
		if strings.Contains(line, canary) {
			return false
		}
	}
	switch {
	case strings.HasPrefix(line, ":KUBE-"), strings.HasPrefix(line, "-N KUBE-"), strings.HasPrefix(line, "-A KUBE-"):
		return true
	case strings.HasPrefix(line, "-A "):
		return strings.Contains(line, " -j KUBE-") || strings.Contains(line, " -g KUBE-")
	}
	return false
}

// withoutNfacct removes what upstream writes, when the kernel has
// nfnetlink_acct, only to count packets for its metrics (kproxy does not
// implement the nfacct metrics): the extra KUBE-NODEPORTS rule per NodePort
// "-d 127.0.0.0/8 ... -m nfacct --nfacct-name localhost_nps_accepted_pkts
// -j KUBE-EXT-..." (the next rule, without -d, sends the same packets to the
// same chain), and the "-m nfacct --nfacct-name NAME" match of other rules
// (the invalid-conntrack DROP), which only counts.
func withoutNfacct(save string) string {
	var out []string
	for line := range strings.SplitSeq(save, "\n") {
		if strings.HasPrefix(line, "-A KUBE-NODEPORTS ") && strings.Contains(line, "-m nfacct ") {
			continue
		}
		out = append(out, nfacctMatch.ReplaceAllString(line, ""))
	}
	return strings.Join(out, "\n")
}

// lineDiff lists the lines only in a (prefixed "-") and only in b ("+").
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for _, l := range al {
		if !slices.Contains(bl, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range bl {
		if !slices.Contains(al, l) {
			out = append(out, "+ "+l)
		}
	}
	if len(out) == 0 {
		return "(same lines, different order)\n--- upstream\n" + a + "--- kproxy\n" + b
	}
	return strings.Join(out, "\n")
}
