package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kproxy/kproxy/test/cluster"
	"github.com/kproxy/kproxy/test/probe"
)

// deployDir holds the manifests a user applies; tests run in test/e2e.
const deployDir = "../../deploy"

// clusterEnv is a world whose node namespace also runs etcd and
// kube-apiserver, with kproxy deployed from deploy/ reading the API.
type clusterEnv struct {
	*env
	c   *cluster.Cluster
	ctx context.Context
}

type clusterEnvOptions struct {
	// MinSyncPeriod replaces the deployed configuration's minSyncPeriod of
	// the proxy mode's section when set. ("0s" would mean the default, as upstream.)
	MinSyncPeriod string
}

// newClusterEnv starts the control plane in the node namespace, applies the
// ServiceAccount and RBAC manifests, registers the Node and starts kproxy
// with deploy/configmap.yaml's config.conf and the ServiceAccount's token.
func newClusterEnv(t *testing.T, opts clusterEnvOptions) *clusterEnv {
	t.Helper()
	ce := newBareClusterEnv(t)
	ce.startDeployedKproxy(opts.MinSyncPeriod)
	return ce
}

func (ce *clusterEnv) createNode() {
	ce.t.Helper()
	want := nodeObject(ce.w)
	nodes := ce.c.Client.CoreV1().Nodes()
	got, err := nodes.Create(ce.ctx, want, metav1.CreateOptions{})
	if err != nil {
		ce.t.Fatalf("create node: %v", err)
	}
	if len(got.Status.Addresses) == 0 { // the server may drop status on create
		got.Status = want.Status
		if _, err := nodes.UpdateStatus(ce.ctx, got, metav1.UpdateOptions{}); err != nil {
			ce.t.Fatalf("node status: %v", err)
		}
	}
}

func (ce *clusterEnv) createNamespace(name string) {
	ce.t.Helper()
	ns := &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := ce.c.Client.CoreV1().Namespaces().Create(ce.ctx, ns, metav1.CreateOptions{}); err != nil {
		ce.t.Fatalf("create namespace %s: %v", name, err)
	}
}

// startDeployedKproxy runs kproxy as the DaemonSet would: --config with the
// ConfigMap's config.conf, only --hostname-override and -v besides.
func (ce *clusterEnv) startDeployedKproxy(minSyncPeriod string) {
	ce.t.Helper()
	token, err := ce.c.Token(ce.ctx, "kube-system", "kproxy")
	if err != nil {
		ce.t.Fatal(err)
	}
	kubeconfig, err := ce.c.WriteTokenKubeconfig("kproxy", token)
	if err != nil {
		ce.t.Fatal(err)
	}
	conf, err := deployedConfig(kubeconfig, os.Getenv("KPROXY_E2E_PROXY_MODE") == "ipvs", minSyncPeriod)
	if err != nil {
		ce.t.Fatal(err)
	}
	path := filepath.Join(ce.dir, "config.conf")
	if err := os.WriteFile(path, conf, 0o600); err != nil {
		ce.t.Fatal(err)
	}
	p, err := ce.w.Start(ce.w.Node, kproxyBin, "--config", path, "--hostname-override", nodeName, "-v", "2")
	if err != nil {
		ce.t.Fatalf("start kproxy: %v", err)
	}
	ce.kproxy = p
}

// deployedConfig is deploy/configmap.yaml's config.conf with what differs in
// the test world: the kubeconfig path, the pods' cluster CIDR, the mode
// (ipvs when asked), and minSyncPeriod when not empty.
func deployedConfig(kubeconfig string, ipvs bool, minSyncPeriod string) ([]byte, error) {
	raw, err := os.ReadFile(filepath.Join(deployDir, "configmap.yaml"))
	if err != nil {
		return nil, err
	}
	var cm v1.ConfigMap
	if err := yaml.UnmarshalStrict(raw, &cm); err != nil {
		return nil, fmt.Errorf("deploy/configmap.yaml: %w", err)
	}
	var conf map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["config.conf"]), &conf); err != nil {
		return nil, fmt.Errorf("config.conf: %w", err)
	}
	if conf["kind"] != "KubeProxyConfiguration" {
		return nil, fmt.Errorf("config.conf: kind %v, want KubeProxyConfiguration", conf["kind"])
	}
	conf["clientConnection"] = map[string]any{"kubeconfig": kubeconfig}
	conf["clusterCIDR"] = "10.244.0.0/16,fd00:10:244::/48"
	section := "iptables"
	if ipvs {
		conf["mode"], section = "ipvs", "ipvs"
	}
	if minSyncPeriod != "" {
		sync, _ := conf[section].(map[string]any)
		if sync == nil {
			sync = map[string]any{}
		}
		sync["minSyncPeriod"] = minSyncPeriod
		conf[section] = sync
	}
	return yaml.Marshal(conf)
}

// putSlice creates or updates an EndpointSlice, stamping the
// last-change-trigger-time annotation as the endpointslice controller does.
func (ce *clusterEnv) putSlice(s *discovery.EndpointSlice, at time.Time) *discovery.EndpointSlice {
	ce.t.Helper()
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[v1.EndpointsLastChangeTriggerTime] = at.UTC().Format(time.RFC3339Nano)
	api := ce.c.Client.DiscoveryV1().EndpointSlices(s.Namespace)
	var out *discovery.EndpointSlice
	var err error
	if s.ResourceVersion == "" {
		out, err = api.Create(ce.ctx, s, metav1.CreateOptions{})
	} else {
		out, err = api.Update(ce.ctx, s, metav1.UpdateOptions{})
	}
	if err != nil {
		ce.t.Fatalf("write endpointslice %s: %v", s.Name, err)
	}
	return out
}

func (ce *clusterEnv) createService(svc *v1.Service) {
	ce.t.Helper()
	if _, err := ce.c.Client.CoreV1().Services(svc.Namespace).Create(ce.ctx, svc, metav1.CreateOptions{}); err != nil {
		ce.t.Fatalf("create service %s: %v", svc.Name, err)
	}
}

// answering opens n connections to addr from the first pod and returns the
// sorted names of the pods that answered.
func (ce *clusterEnv) answering(addr string, n int) ([]string, error) {
	counts, err := probe.TCPMany(ce.w.Pods[0].Netns, addr, n, probeTimeout)
	if err != nil {
		return nil, err
	}
	var names []string
	for name := range counts {
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}

// waitAnswering waits until connections to addr are answered by exactly want.
// Each check makes 60 connections from one pod, so the checks are paced:
// every 250 ms for the first 5 s, then every second. A wait that lasts a
// minute (a watch in client-go's backoff) would otherwise leave tens of
// thousands of the pod's connections in TIME_WAIT and exhaust its source
// ports: connect(2) then fails with EADDRNOTAVAIL, for the test's own
// traffic loop too.
func (ce *clusterEnv) waitAnswering(timeout time.Duration, addr string, want ...string) {
	ce.t.Helper()
	sort.Strings(want)
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		// 60 connections over 3 pods miss one with probability 3·(2/3)^60 < 1e-10.
		got, err := ce.answering(addr, 60)
		if err == nil && slices.Equal(got, want) {
			return
		}
		if err == nil {
			err = fmt.Errorf("answered by %v", got)
		}
		if time.Now().After(deadline) {
			ce.t.Fatalf("%s answered by %v: not true after %v: %v", addr, want, timeout, err)
		}
		pause := time.Second
		if time.Since(start) < 5*time.Second {
			pause = 250 * time.Millisecond
		}
		time.Sleep(pause)
	}
}

func podNames(eps []discovery.Endpoint) []string {
	var names []string
	for _, ep := range eps {
		names = append(names, ep.TargetRef.Name)
	}
	return names
}

// TestClusterDeployManifestsServeTraffic deploys kproxy with deploy/'s
// ServiceAccount, RBAC and configuration against a real kube-apiserver and
// checks that traffic follows Service and EndpointSlice writes to the API.
func TestClusterDeployManifestsServeTraffic(t *testing.T) {
	ce := newClusterEnv(t, clusterEnvOptions{})
	w := ce.w
	svc := service("web", "10.96.0.10")
	ce.createService(svc)
	all := []discovery.Endpoint{endpoint(w, w.Pods[0]), endpoint(w, w.Pods[1]), endpoint(w, w.Pods[2])}
	s := ce.putSlice(slice(svc, "a", all...), time.Now())
	ce.waitAnswering(20*time.Second, "10.96.0.10:80", podNames(all)...)

	s.Endpoints = all[:2]
	ce.putSlice(s, time.Now())
	ce.waitAnswering(20*time.Second, "10.96.0.10:80", podNames(all[:2])...)

	if err := ce.c.Client.CoreV1().Services(testNS).Delete(ce.ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete service: %v", err)
	}
	ce.eventually(20*time.Second, "deleted service stops answering", func() error {
		if strings.Contains(ce.save("nat"), "e2e/web:p") {
			return fmt.Errorf("nat table still has e2e/web:p")
		}
		if a, err := probe.TCP(w.Pods[0].Netns, "10.96.0.10:80", 300*time.Millisecond); err == nil {
			return fmt.Errorf("deleted service answered by %s", a.Pod)
		}
		return nil
	})
}
