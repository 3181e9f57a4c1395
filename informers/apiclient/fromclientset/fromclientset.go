// Package fromclientset adapts a client-go clientset (in tests, a fake
// one) to apiclient.API. kproxy itself does not use it: a clientset links
// every API group.
package fromclientset

import (
	"context"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kproxy/kproxy/informers/apiclient"
)

// API is apiclient.API over a clientset.
type API struct{ kubernetes.Interface }

var _ apiclient.API = API{}

// New returns cs as an apiclient.API.
func New(cs kubernetes.Interface) API { return API{cs} }

// ListWatch lists and watches r through the clientset's typed client; a
// fake clientset's lack of watch-list support is passed on, as client-go's
// generated informers do.
func (a API) ListWatch(r apiclient.Resource, tweak func(*metav1.ListOptions)) cache.ListerWatcher {
	list, watchFn := a.typed(r)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			if tweak != nil {
				tweak(&opts)
			}
			return list(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			if tweak != nil {
				tweak(&opts)
			}
			return watchFn(ctx, opts)
		},
	}
	return cache.ToListWatcherWithWatchListSemantics(lw, a.Interface)
}

type (
	listFunc  func(context.Context, metav1.ListOptions) (runtime.Object, error)
	watchFunc func(context.Context, metav1.ListOptions) (watch.Interface, error)
)

func (a API) typed(r apiclient.Resource) (listFunc, watchFunc) {
	switch r {
	case apiclient.Services:
		c := a.CoreV1().Services("")
		return func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) }, c.Watch
	case apiclient.EndpointSlices:
		c := a.DiscoveryV1().EndpointSlices("")
		return func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) }, c.Watch
	case apiclient.Nodes:
		c := a.CoreV1().Nodes()
		return func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) }, c.Watch
	case apiclient.ServiceCIDRs:
		c := a.NetworkingV1().ServiceCIDRs()
		return func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) }, c.Watch
	}
	panic("fromclientset: unknown resource " + r.String())
}

// GetNode reads one Node.
func (a API) GetNode(ctx context.Context, name string) (*v1.Node, error) {
	return a.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
}
