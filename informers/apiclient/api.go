package apiclient

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// API is what kproxy reads from the API server: lists and watches of four
// resources, and its own Node. NewClient's implementation speaks to the
// three API groups involved only; it does not link client-go's clientset,
// whose scheme registers every API group at start (binary 50 → 30 MB, and
// about 8 MB less of it paged in). Tests adapt a fake clientset
// (informers/apiclient/fromclientset).
type API interface {
	// ListWatch lists and watches r cluster-wide with the list options
	// tweak sets (label and field selectors).
	ListWatch(r Resource, tweak func(*metav1.ListOptions)) cache.ListerWatcher
	// GetNode reads one Node.
	GetNode(ctx context.Context, name string) (*v1.Node, error)
}

// Resource is a resource kproxy watches.
type Resource int

const (
	Services Resource = iota
	EndpointSlices
	Nodes
	ServiceCIDRs
)

// resourceInfo is where a Resource lives and its Go types.
type resourceInfo struct {
	group   schema.GroupVersion
	name    string
	object  func() runtime.Object
	newList func() runtime.Object
}

var resources = [...]resourceInfo{
	Services: {v1.SchemeGroupVersion, "services",
		func() runtime.Object { return &v1.Service{} }, func() runtime.Object { return &v1.ServiceList{} }},
	EndpointSlices: {discovery.SchemeGroupVersion, "endpointslices",
		func() runtime.Object { return &discovery.EndpointSlice{} },
		func() runtime.Object { return &discovery.EndpointSliceList{} }},
	Nodes: {v1.SchemeGroupVersion, "nodes",
		func() runtime.Object { return &v1.Node{} }, func() runtime.Object { return &v1.NodeList{} }},
	ServiceCIDRs: {networkingv1.SchemeGroupVersion, "servicecidrs",
		func() runtime.Object { return &networkingv1.ServiceCIDR{} },
		func() runtime.Object { return &networkingv1.ServiceCIDRList{} }},
}

// Object is an empty object of r's type, as an informer wants it.
func (r Resource) Object() runtime.Object { return resources[r].object() }

func (r Resource) String() string { return resources[r].name }

// apiScheme knows the three groups' types, and the options of lists and
// watches.
var (
	apiScheme      = runtime.NewScheme()
	apiCodecs      = serializer.NewCodecFactory(apiScheme)
	parameterCodec = runtime.NewParameterCodec(apiScheme)
)

func init() {
	utilruntime.Must(v1.AddToScheme(apiScheme))
	utilruntime.Must(discovery.AddToScheme(apiScheme))
	utilruntime.Must(networkingv1.AddToScheme(apiScheme))
	metav1.AddToGroupVersion(apiScheme, schema.GroupVersion{Version: "v1"})
}

// restAPI is API over one REST client per group.
type restAPI struct {
	clients map[schema.GroupVersion]rest.Interface
}

func newRESTAPI(cfg *rest.Config) (*restAPI, error) {
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("create API client: %w", err)
	}
	a := &restAPI{clients: map[schema.GroupVersion]rest.Interface{}}
	for _, gv := range []schema.GroupVersion{v1.SchemeGroupVersion, discovery.SchemeGroupVersion, networkingv1.SchemeGroupVersion} {
		c := *cfg
		c.GroupVersion = &gv
		c.APIPath = "/apis"
		if gv.Group == "" {
			c.APIPath = "/api"
		}
		c.NegotiatedSerializer = apiCodecs.WithoutConversion()
		if c.UserAgent == "" {
			c.UserAgent = rest.DefaultKubernetesUserAgent()
		}
		rc, err := rest.RESTClientForConfigAndClient(&c, httpClient)
		if err != nil {
			return nil, fmt.Errorf("create API client for %s: %w", gv, err)
		}
		a.clients[gv] = rc
	}
	return a, nil
}

func (a *restAPI) ListWatch(r Resource, tweak func(*metav1.ListOptions)) cache.ListerWatcher {
	info := resources[r]
	rc := a.clients[info.group]
	request := func(opts metav1.ListOptions) *rest.Request {
		if tweak != nil {
			tweak(&opts)
		}
		var timeout time.Duration
		if opts.TimeoutSeconds != nil {
			timeout = time.Duration(*opts.TimeoutSeconds) * time.Second
		}
		return rc.Get().Resource(info.name).VersionedParams(&opts, parameterCodec).Timeout(timeout)
	}
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			list := info.newList()
			return list, request(opts).Do(ctx).Into(list)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.Watch = true
			return request(opts).Watch(ctx)
		},
	}
}

func (a *restAPI) GetNode(ctx context.Context, name string) (*v1.Node, error) {
	node := &v1.Node{}
	err := a.clients[v1.SchemeGroupVersion].Get().Resource("nodes").Name(name).
		VersionedParams(&metav1.GetOptions{}, parameterCodec).Do(ctx).Into(node)
	return node, err
}
