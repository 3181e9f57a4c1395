package apiclient

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
)

// fakeServer answers lists, one-event watches and Node reads as the API
// server does (JSON), and records the requests.
type fakeServer struct {
	mu   sync.Mutex
	seen []string
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.seen = append(f.seen, r.URL.Path+"?"+r.URL.RawQuery)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	var body any
	switch r.URL.Path {
	case "/api/v1/services":
		svc := v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", ResourceVersion: "7"}}
		if r.URL.Query().Get("watch") == "true" {
			svc.ResourceVersion = "8"
			svc.TypeMeta = metav1.TypeMeta{Kind: "Service", APIVersion: "v1"}
			body = map[string]any{"type": "MODIFIED", "object": svc}
			break
		}
		body = v1.ServiceList{TypeMeta: metav1.TypeMeta{Kind: "ServiceList", APIVersion: "v1"},
			ListMeta: metav1.ListMeta{ResourceVersion: "7"}, Items: []v1.Service{svc}}
	case "/apis/discovery.k8s.io/v1/endpointslices":
		body = discovery.EndpointSliceList{TypeMeta: metav1.TypeMeta{Kind: "EndpointSliceList", APIVersion: "discovery.k8s.io/v1"},
			Items: []discovery.EndpointSlice{{ObjectMeta: metav1.ObjectMeta{Name: "web-abc", Namespace: "default"},
				AddressType: discovery.AddressTypeIPv4}}}
	case "/apis/networking.k8s.io/v1/servicecidrs":
		body = networkingv1.ServiceCIDRList{TypeMeta: metav1.TypeMeta{Kind: "ServiceCIDRList", APIVersion: "networking.k8s.io/v1"},
			Items: []networkingv1.ServiceCIDR{{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes"},
				Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.96.0.0/12"}}}}}
	case "/api/v1/nodes/node-a":
		body = v1.Node{TypeMeta: metav1.TypeMeta{Kind: "Node", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}
	default:
		http.NotFound(w, r)
		return
	}
	_ = json.NewEncoder(w).Encode(body)
}

func newTestAPI(t *testing.T) (*restAPI, *fakeServer) {
	t.Helper()
	f := &fakeServer{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	a, err := newRESTAPI(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return a, f
}

func TestRESTAPIListsWithTheTweakedOptions(t *testing.T) {
	a, f := newTestAPI(t)
	tweak := func(o *metav1.ListOptions) { o.LabelSelector = "!service.kubernetes.io/headless" }
	obj, err := a.ListWatch(Services, tweak).List(metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		t.Fatal(err)
	}
	list, ok := obj.(*v1.ServiceList)
	if !ok || len(list.Items) != 1 || list.Items[0].Name != "web" || list.ResourceVersion != "7" {
		t.Fatalf("List = %#v", obj)
	}
	want := "/api/v1/services?labelSelector=%21service.kubernetes.io%2Fheadless&resourceVersion=0"
	if f.seen[0] != want {
		t.Errorf("request %q, want %q", f.seen[0], want)
	}
}

func TestRESTAPIListsEveryResourceFromItsGroup(t *testing.T) {
	a, _ := newTestAPI(t)
	for _, tc := range []struct {
		r    Resource
		want func(runtime.Object) bool
	}{
		{EndpointSlices, func(o runtime.Object) bool {
			l, ok := o.(*discovery.EndpointSliceList)
			return ok && len(l.Items) == 1 && l.Items[0].Name == "web-abc"
		}},
		{ServiceCIDRs, func(o runtime.Object) bool {
			l, ok := o.(*networkingv1.ServiceCIDRList)
			return ok && len(l.Items) == 1 && l.Items[0].Spec.CIDRs[0] == "10.96.0.0/12"
		}},
	} {
		obj, err := a.ListWatch(tc.r, nil).List(metav1.ListOptions{})
		if err != nil || !tc.want(obj) {
			t.Errorf("%v: List = %#v, %v", tc.r, obj, err)
		}
	}
	if _, err := a.ListWatch(Nodes, nil).List(metav1.ListOptions{}); err == nil {
		t.Error("a list the server refuses (404) returned no error")
	}
}

func TestRESTAPIWatchDecodesEvents(t *testing.T) {
	a, f := newTestAPI(t)
	w, err := a.ListWatch(Services, nil).Watch(metav1.ListOptions{ResourceVersion: "7"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ev := <-w.ResultChan()
	svc, ok := ev.Object.(*v1.Service)
	if ev.Type != "MODIFIED" || !ok || svc.Name != "web" || svc.ResourceVersion != "8" {
		t.Fatalf("event %v %#v", ev.Type, ev.Object)
	}
	if want := "/api/v1/services?resourceVersion=7&watch=true"; f.seen[0] != want {
		t.Errorf("request %q, want %q", f.seen[0], want)
	}
}

func TestRESTAPIGetNode(t *testing.T) {
	a, _ := newTestAPI(t)
	n, err := a.GetNode(context.Background(), "node-a")
	if err != nil || n.Name != "node-a" {
		t.Fatalf("GetNode = %v, %v", n, err)
	}
	if _, err := a.GetNode(context.Background(), "absent"); err == nil {
		t.Fatal("GetNode of an absent node: no error")
	}
}
