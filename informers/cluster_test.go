package informers

import (
	"context"
	"github.com/kproxy/kproxy/informers/apiclient/fromclientset"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
)

type objOption func(*metav1.ObjectMeta)

func withLabel(k, v string) objOption {
	return func(m *metav1.ObjectMeta) {
		if m.Labels == nil {
			m.Labels = map[string]string{}
		}
		m.Labels[k] = v
	}
}

func objMeta(ns, name string, opts []objOption) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Namespace: ns, Name: name}
	for _, o := range opts {
		o(&m)
	}
	return m
}

func svc(ns, name string, opts ...objOption) *v1.Service {
	return &v1.Service{
		ObjectMeta: objMeta(ns, name, opts),
		Spec: v1.ServiceSpec{
			ClusterIP: "10.96.0.10",
			Ports:     []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}},
		},
	}
}

func slice(ns, name string, opts ...objOption) *discovery.EndpointSlice {
	opts = append([]objOption{withLabel(discovery.LabelServiceName, "web")}, opts...)
	return &discovery.EndpointSlice{
		ObjectMeta:  objMeta(ns, name, opts),
		AddressType: discovery.AddressTypeIPv4,
		Endpoints:   []discovery.Endpoint{{Addresses: []string{"10.244.1.11"}}},
	}
}

func node(name string, opts ...objOption) *v1.Node {
	return &v1.Node{ObjectMeta: objMeta("", name, opts)}
}

// runCluster starts RunCluster on client and stops it at the end of the test.
func runCluster(t *testing.T, client *fake.Clientset, h Handlers) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunCluster(ctx, ClusterOptions{Client: fromclientset.New(client), NodeName: "kpx-node", Handlers: h})
	}()
	t.Cleanup(func() {
		cancel()
		if err := awaitReturn(t, "RunCluster", done); err != nil {
			t.Errorf("RunCluster returned %v", err)
		}
	})
}

func TestRunClusterDeliversSelectedObjects(t *testing.T) {
	client := fake.NewClientset(
		svc("demo", "web"),
		svc("demo", "sharded", withLabel(LabelServiceProxyName, "other-proxy")),
		slice("demo", "web-1"),
		slice("demo", "db-1", withLabel(LabelHeadless, "")),
		node("kpx-node"),
		node("other-node"),
	)
	rec := newRecorder()
	runCluster(t, client, HandlersOf(rec))

	got := rec.waitEvents(t, "add Service demo/web", "add EndpointSlice demo/web-1", "set Node kpx-node",
		"synced Services", "synced EndpointSlices", "synced Node")
	for _, add := range []string{"add Service demo/web", "add EndpointSlice demo/web-1", "set Node kpx-node"} {
		if indexOf(t, got, add) > indexOf(t, got, "synced Services") {
			t.Errorf("%q delivered after the Synced calls: %q", add, got)
		}
	}

	ctx := context.Background()
	services := client.CoreV1().Services("demo")
	slices := client.DiscoveryV1().EndpointSlices("demo")
	nodes := client.CoreV1().Nodes()

	updated := svc("demo", "web")
	updated.Spec.Ports[0].Port = 8080
	noErr(t, errOf(services.Update(ctx, updated, metav1.UpdateOptions{})))
	rec.waitEvents(t, "update Service demo/web")
	if port := rec.service("demo/web").Spec.Ports[0].Port; port != 8080 {
		t.Errorf("updated service has port %d, want 8080", port)
	}

	noErr(t, errOf(slices.Create(ctx, slice("demo", "web-2"), metav1.CreateOptions{})))
	noErr(t, errOf(slices.Create(ctx, slice("demo", "db-2", withLabel(LabelHeadless, "")), metav1.CreateOptions{})))
	noErr(t, errOf(services.Create(ctx, svc("demo", "api"), metav1.CreateOptions{})))
	rec.waitEvents(t, "add EndpointSlice demo/web-2", "add Service demo/api")

	noErr(t, slices.Delete(ctx, "web-1", metav1.DeleteOptions{}))
	rec.waitEvents(t, "delete EndpointSlice demo/web-1")

	// Gaining the service-proxy-name label takes the Service out of the
	// selection: the handler sees a delete. Losing it brings it back.
	noErr(t, errOf(services.Update(ctx, svc("demo", "api", withLabel(LabelServiceProxyName, "x")), metav1.UpdateOptions{})))
	rec.waitEvents(t, "delete Service demo/api")
	noErr(t, errOf(services.Update(ctx, svc("demo", "sharded"), metav1.UpdateOptions{})))
	rec.waitEvents(t, "add Service demo/sharded")

	noErr(t, services.Delete(ctx, "web", metav1.DeleteOptions{}))
	rec.waitEvents(t, "delete Service demo/web")

	noErr(t, errOf(nodes.Update(ctx, node("kpx-node", withLabel(v1.LabelTopologyZone, "zone-b")), metav1.UpdateOptions{})))
	noErr(t, errOf(nodes.Update(ctx, node("other-node", withLabel(v1.LabelTopologyZone, "zone-b")), metav1.UpdateOptions{})))
	rec.waitEvents(t, "set Node kpx-node")
	if zone := rec.currentNode().Labels[v1.LabelTopologyZone]; zone != "zone-b" {
		t.Errorf("node zone = %q, want zone-b", zone)
	}
	noErr(t, nodes.Delete(ctx, "other-node", metav1.DeleteOptions{}))
	noErr(t, nodes.Delete(ctx, "kpx-node", metav1.DeleteOptions{}))
	rec.waitEvents(t, "delete Node kpx-node")
}

// TestRunClusterRequestsSelectors checks what the server is asked for: the
// fake clientset does not evaluate field selectors, and the client-side
// filtering would hide a missing label selector.
func TestRunClusterRequestsSelectors(t *testing.T) {
	client := fake.NewClientset()
	var mu sync.Mutex
	requested := map[string]k8stesting.ListRestrictions{} // "verb resource" -> last restrictions
	record := func(action k8stesting.Action, r k8stesting.ListRestrictions) {
		mu.Lock()
		defer mu.Unlock()
		requested[action.GetVerb()+" "+action.GetResource().Resource] = r
	}
	client.PrependReactor("list", "*", func(action k8stesting.Action) (bool, runtime.Object, error) {
		record(action, action.(k8stesting.ListAction).GetListRestrictions())
		return false, nil, nil
	})
	client.PrependWatchReactor("*", func(action k8stesting.Action) (bool, watch.Interface, error) {
		r := action.(k8stesting.WatchAction).GetWatchRestrictions()
		record(action, k8stesting.ListRestrictions{Labels: r.Labels, Fields: r.Fields})
		return false, nil, nil
	})
	rec := newRecorder()
	runCluster(t, client, HandlersOf(rec))
	rec.waitEvents(t, "synced Services", "synced EndpointSlices", "synced Node")
	eventually(t, "watches to start", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(requested) == 6
	})

	visible := labels.Set{"app": "web"}
	sharded := labels.Set{"app": "web", LabelServiceProxyName: "other"}
	headless := labels.Set{"app": "web", LabelHeadless: ""}
	mu.Lock()
	defer mu.Unlock()
	for _, verb := range []string{"list", "watch"} {
		for _, res := range []string{"services", "endpointslices"} {
			sel := requested[verb+" "+res].Labels
			if sel == nil || !sel.Matches(visible) || sel.Matches(sharded) || sel.Matches(headless) {
				t.Errorf("%s %s: label selector %v does not select like %q", verb, res, sel, ProxyLabelSelector)
			}
		}
		nodeSel := requested[verb+" nodes"].Fields
		if nodeSel == nil || nodeSel.String() != "metadata.name=kpx-node" {
			t.Errorf("%s nodes: field selector %v, want metadata.name=kpx-node", verb, nodeSel)
		}
	}
}

func TestProxyLabelSelectorMatchesClientSideFilter(t *testing.T) {
	sel, err := labels.Parse(ProxyLabelSelector)
	if err != nil {
		t.Fatalf("parse %q: %v", ProxyLabelSelector, err)
	}
	for _, set := range []map[string]string{
		nil,
		{"app": "web"},
		{LabelServiceProxyName: ""},
		{LabelServiceProxyName: "x", "app": "web"},
		{LabelHeadless: ""},
		{LabelHeadless: "true", LabelServiceProxyName: "x"},
	} {
		if got, want := isProxied(set), sel.Matches(labels.Set(set)); got != want {
			t.Errorf("labels %v: isProxied = %v, selector matches = %v", set, got, want)
		}
	}
}

func TestEventAdapter(t *testing.T) {
	visibleSvc := svc("demo", "web")
	hiddenSvc := svc("demo", "web", withLabel(LabelServiceProxyName, "x"))
	tests := []struct {
		name  string
		drive func(a cache.ResourceEventHandler)
		want  []string
	}{
		{"add", func(a cache.ResourceEventHandler) { a.OnAdd(visibleSvc, true) }, []string{"add Service demo/web"}},
		{"add hidden", func(a cache.ResourceEventHandler) { a.OnAdd(hiddenSvc, false) }, nil},
		{"add wrong type", func(a cache.ResourceEventHandler) { a.OnAdd(node("n"), false) }, nil},
		{"add nil", func(a cache.ResourceEventHandler) { a.OnAdd(nil, false) }, nil},
		{"update", func(a cache.ResourceEventHandler) { a.OnUpdate(visibleSvc, visibleSvc) }, []string{"update Service demo/web"}},
		{"update into selection", func(a cache.ResourceEventHandler) { a.OnUpdate(hiddenSvc, visibleSvc) }, []string{"add Service demo/web"}},
		{"update out of selection", func(a cache.ResourceEventHandler) { a.OnUpdate(visibleSvc, hiddenSvc) }, []string{"delete Service demo/web"}},
		{"update hidden", func(a cache.ResourceEventHandler) { a.OnUpdate(hiddenSvc, hiddenSvc) }, nil},
		{"update wrong type", func(a cache.ResourceEventHandler) { a.OnUpdate(visibleSvc, "junk") }, nil},
		{"delete", func(a cache.ResourceEventHandler) { a.OnDelete(visibleSvc) }, []string{"delete Service demo/web"}},
		{"delete hidden", func(a cache.ResourceEventHandler) { a.OnDelete(hiddenSvc) }, nil},
		{"delete tombstone", func(a cache.ResourceEventHandler) {
			a.OnDelete(cache.DeletedFinalStateUnknown{Key: "demo/web", Obj: visibleSvc})
		}, []string{"delete Service demo/web"}},
		{"delete tombstone of wrong type", func(a cache.ResourceEventHandler) {
			a.OnDelete(cache.DeletedFinalStateUnknown{Key: "demo/web", Obj: slice("demo", "web")})
		}, nil},
		{"delete tombstone without object", func(a cache.ResourceEventHandler) {
			a.OnDelete(cache.DeletedFinalStateUnknown{Key: "demo/web"})
		}, nil},
		{"delete wrong type", func(a cache.ResourceEventHandler) { a.OnDelete(42) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder()
			tt.drive(&eventAdapter[*v1.Service]{
				kind: "Service", visible: labelsProxied[*v1.Service],
				events: ServiceEvents(rec),
			})
			if got := rec.take(); !slices.Equal(got, tt.want) {
				t.Errorf("events = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRunClusterValidatesOptions(t *testing.T) {
	err := RunCluster(context.Background(), ClusterOptions{})
	if err == nil {
		t.Fatal("RunCluster with empty options succeeded")
	}
	for _, field := range []string{"Client", "Handlers.Services", "Handlers.EndpointSlices", "Handlers.Nodes", "NodeName"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not mention %s", err, field)
		}
	}
}

func TestRunClusterReturnsWhenCancelledBeforeSync(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec := newRecorder()
	done := make(chan error, 1)
	go func() {
		done <- RunCluster(ctx, ClusterOptions{Client: fromclientset.New(fake.NewClientset()), NodeName: "n", Handlers: HandlersOf(rec)})
	}()
	if err := awaitReturn(t, "RunCluster", done); err != nil {
		t.Fatalf("RunCluster = %v, want nil", err)
	}
	for _, e := range rec.take() {
		if strings.HasPrefix(e, "synced") {
			t.Errorf("%q called although caches never synced", e)
		}
	}
}

// errOf keeps the error of a (value, error) result.
func errOf[T any](_ T, err error) error { return err }

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
