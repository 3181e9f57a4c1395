package cluster_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kproxy/kproxy/test/cluster"
	"github.com/kproxy/kproxy/test/kerneltest"
)

const apiTimeout = time.Minute

// TestClusterServesKubeProxyAPIs runs the real control plane and checks what
// kproxy relies on: Services and EndpointSlices round-trip, and the deploy/
// ServiceAccount and RBAC grant exactly kube-proxy's read access.
func TestClusterServesKubeProxyAPIs(t *testing.T) {
	c := cluster.StartForTest(t, cluster.Options{})
	t.Logf("control plane ready in %v (namespace %s, kube-apiserver %s)",
		c.StartupTime.Round(time.Millisecond), c.Netns, c.Binaries.APIServer)
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()

	t.Run("service and endpointslice round-trip", func(t *testing.T) {
		checkServiceRoundTrip(ctx, t, c.Client)
	})
	t.Run("deploy ServiceAccount is a node-proxier", func(t *testing.T) {
		checkDeployRBAC(ctx, t, c)
	})
	t.Run("kubeconfig files", func(t *testing.T) {
		checkKubeconfigs(ctx, t, c)
	})
	t.Run("write behind kube-apiserver", func(t *testing.T) {
		checkUpdateInEtcd(ctx, t, c)
	})
	t.Run("API served in another namespace", func(t *testing.T) {
		checkServeAPIIn(t, c)
	})
}

// checkServeAPIIn reaches kube-apiserver's /readyz from a namespace of its
// own through ServeAPIIn, at the cluster's own address; before the relay,
// nothing answers there.
func checkServeAPIIn(t *testing.T, c *cluster.Cluster) {
	kerneltest.NeedTools(t, "ServeAPIIn", "curl")
	ns := kerneltest.Netns(t, "kpx-relay-")
	curl := func() (string, error) {
		out, err := exec.Command("ip", "netns", "exec", ns, "curl", "-sk", "--max-time", "10", c.Server+"/readyz").CombinedOutput()
		return string(out), err
	}
	if out, err := curl(); err == nil {
		t.Fatalf("%s answered in %s before ServeAPIIn: %s", c.Server, ns, out)
	}
	if err := c.ServeAPIIn(ns); err != nil {
		t.Fatal(err)
	}
	if out, err := curl(); err != nil || out != "ok" {
		t.Fatalf("/readyz through the relay in %s: %q, %v", ns, out, err)
	}
}

// checkUpdateInEtcd changes an EndpointSlice in etcd directly and reads the
// change back through kube-apiserver; a key that does not exist is refused.
func checkUpdateInEtcd(ctx context.Context, t *testing.T, c *cluster.Cluster) {
	api := c.Client.DiscoveryV1().EndpointSlices("default")
	created, err := api.Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "behind", Namespace: "default"},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.244.1.21"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create endpointslice: %v", err)
	}
	rev, err := c.UpdateInEtcd(ctx, "endpointslices", "default", "behind", func(obj runtime.Object) error {
		s, ok := obj.(*discoveryv1.EndpointSlice)
		if !ok {
			return fmt.Errorf("decoded a %T", obj)
		}
		s.Endpoints[0].Addresses = []string{"10.244.1.22"}
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateInEtcd: %v", err)
	}
	got, err := api.Get(ctx, "behind", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get endpointslice: %v", err)
	}
	if addr := got.Endpoints[0].Addresses[0]; addr != "10.244.1.22" || got.UID != created.UID ||
		got.ResourceVersion != strconv.FormatInt(rev, 10) {
		t.Errorf("after the etcd write: address %s, uid %s, resourceVersion %s; want 10.244.1.22, %s, %d",
			addr, got.UID, got.ResourceVersion, created.UID, rev)
	}
	if _, err := c.UpdateInEtcd(ctx, "endpointslice", "default", "behind",
		func(runtime.Object) error { return nil }); err == nil {
		t.Error("UpdateInEtcd on a key that does not exist succeeded")
	}
}

// checkKubeconfigs loads the admin and a token kubeconfig as a process in the
// namespace would (only the dialer is added, since this test runs outside it).
func checkKubeconfigs(ctx context.Context, t *testing.T, c *cluster.Cluster) {
	// No controller-manager runs, so there is no "default" ServiceAccount.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "kubeconfig-check"}}
	if _, err := c.Client.CoreV1().ServiceAccounts("default").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	token, err := c.Token(ctx, "default", sa.Name)
	if err != nil {
		t.Fatal(err)
	}
	tokenPath, err := c.WriteTokenKubeconfig(sa.Name, token)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{c.Kubeconfig, tokenPath} {
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			t.Fatalf("load %s: %v", path, err)
		}
		if cfg.Host != c.Server {
			t.Errorf("%s: server %s, want %s", path, cfg.Host, c.Server)
		}
		cfg.Dial = c.Config.Dial
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Discovery().ServerVersion(); err != nil {
			t.Errorf("%s: server version: %v", path, err)
		}
	}
}

func checkServiceRoundTrip(ctx context.Context, t *testing.T, client kubernetes.Interface) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80,
				TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if _, err := client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create service: %v", err)
	}
	got, err := client.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get service: %v", err)
	}
	ip, err := netip.ParseAddr(got.Spec.ClusterIP)
	if err != nil || !netip.MustParsePrefix(cluster.ServiceCIDR).Contains(ip) {
		t.Errorf("cluster IP %q: want an address in %s", got.Spec.ClusterIP, cluster.ServiceCIDR)
	}

	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "web-abc", Namespace: "default",
			Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.244.1.11"},
			Conditions: discoveryv1.EndpointConditions{Ready: new(true)}}},
		Ports: []discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(8080)),
			Protocol: new(corev1.ProtocolTCP)}},
	}
	if _, err := client.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create endpointslice: %v", err)
	}
	slices, err := client.DiscoveryV1().EndpointSlices("default").List(ctx,
		metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
	if err != nil {
		t.Fatalf("list endpointslices: %v", err)
	}
	if len(slices.Items) != 1 || len(slices.Items[0].Endpoints) != 1 ||
		slices.Items[0].Endpoints[0].Addresses[0] != "10.244.1.11" || *slices.Items[0].Ports[0].Port != 8080 {
		t.Errorf("endpointslices for web = %+v, want the one created (10.244.1.11:8080)", slices.Items)
	}
}

func checkDeployRBAC(ctx context.Context, t *testing.T, c *cluster.Cluster) {
	for _, name := range []string{"serviceaccount.yaml", "rbac.yaml"} {
		manifest, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreateFromYAML(ctx, manifest); err != nil {
			t.Fatalf("deploy/%s: %v", name, err)
		}
	}
	token, err := c.Token(ctx, "kube-system", "kproxy")
	if err != nil {
		t.Fatal(err)
	}
	sa, err := c.ClientForToken(token)
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]func() error{
		"list services": func() error {
			_, err := sa.CoreV1().Services("").List(ctx, metav1.ListOptions{})
			return err
		},
		"list endpointslices": func() error {
			_, err := sa.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
			return err
		},
		"list nodes": func() error {
			_, err := sa.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			return err
		},
	}
	for what, call := range allowed {
		if err := call(); err != nil {
			t.Errorf("%s with the kproxy token: %v, want allowed", what, err)
		}
	}
	_, err = sa.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("list secrets with the kproxy token: err = %v, want Forbidden", err)
	}
	_, err = sa.CoreV1().Services("default").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "x"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 1}}}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("create service with the kproxy token: err = %v, want Forbidden", err)
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := goruntime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the source file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}
