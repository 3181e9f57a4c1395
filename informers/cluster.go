package informers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/kproxy/kproxy/informers/apiclient"
)

// ClusterOptions configures RunCluster.
type ClusterOptions struct {
	// Client talks to the API server.
	Client apiclient.API
	// NodeName is this node's name; only that Node object is watched.
	NodeName string
	// ResyncPeriod is the informers' resync period (configSyncPeriod);
	// 0 disables resyncs.
	ResyncPeriod time.Duration
	// Handlers receive the events. No two handler calls run concurrently.
	Handlers Handlers
	// Logger receives V(4) per-object events and reports of unexpected
	// objects. The zero value discards.
	Logger klog.Logger
}

func (o ClusterOptions) validate() error {
	var errs []error
	if o.Client == nil {
		errs = append(errs, errors.New("cluster source: Client is required"))
	}
	if err := o.Handlers.validate("cluster source"); err != nil {
		errs = append(errs, err)
	}
	if o.NodeName == "" {
		errs = append(errs, errors.New("cluster source: NodeName is required"))
	}
	return errors.Join(errs...)
}

// RunCluster watches Services and EndpointSlices (filtered by
// ProxyLabelSelector) and this node's Node object, and forwards every change
// to opts.Handlers. Once all initial objects have been delivered it calls
// OnServicesSynced, OnEndpointSlicesSynced and OnNodeSynced, once each. It
// returns nil when ctx is done, after the informers have stopped, so no
// handler call happens after it returns.
func RunCluster(ctx context.Context, opts ClusterOptions) error {
	if err := opts.validate(); err != nil {
		return err
	}
	sink := opts.Handlers.serialized()
	objects := func(o *metav1.ListOptions) { o.LabelSelector = ProxyLabelSelector }
	informers := []cache.SharedIndexInformer{
		newInformer(opts.Client, apiclient.Services, objects, opts.ResyncPeriod),
		newInformer(opts.Client, apiclient.EndpointSlices, objects, opts.ResyncPeriod),
		newInformer(opts.Client, apiclient.Nodes, func(o *metav1.ListOptions) { o.FieldSelector = nodeFieldSelector(opts.NodeName) },
			opts.ResyncPeriod),
	}
	synced, err := registerHandlers(informers, sink, opts)
	if err != nil {
		return err
	}
	defer runInformers(ctx, informers...)()

	// Registrations (not informers) report synced only once every initial
	// object has reached the handler, which is what the Synced calls promise.
	if !cache.WaitFor(ctx, "", synced...) {
		return nil
	}
	sink.synced()
	<-ctx.Done()
	return nil
}

// newInformer is an informer of r with the transform every one of
// kproxy's informers has (slimObject).
func newInformer(api apiclient.API, r apiclient.Resource, tweak func(*metav1.ListOptions), resync time.Duration) cache.SharedIndexInformer {
	inf := cache.NewSharedIndexInformerWithOptions(api.ListWatch(r, tweak), r.Object(),
		cache.SharedIndexInformerOptions{ResyncPeriod: resync})
	// Only fails once the informer has started.
	_ = inf.SetTransform(slimObject)
	return inf
}

// runInformers starts the informers; the function it returns waits until
// they have stopped (ctx ended) and no handler runs any more.
func runInformers(ctx context.Context, infs ...cache.SharedIndexInformer) (wait func()) {
	var wg sync.WaitGroup
	for _, inf := range infs {
		wg.Go(func() { inf.RunWithContext(ctx) })
	}
	return wg.Wait
}

// registerHandlers adds the Service, EndpointSlice and Node handlers to
// the informers, in that order.
func registerHandlers(infs []cache.SharedIndexInformer, sink sourceEvents, opts ClusterOptions) ([]cache.DoneChecker, error) {
	logger := opts.Logger
	services := &eventAdapter[*v1.Service]{
		kind: "Service", logger: logger, visible: labelsProxied[*v1.Service], events: sink.services,
	}
	slices := &eventAdapter[*discovery.EndpointSlice]{
		kind: "EndpointSlice", logger: logger, visible: labelsProxied[*discovery.EndpointSlice], events: sink.slices,
	}
	node := &eventAdapter[*v1.Node]{
		kind: "Node", logger: logger, events: sink.node,
		visible: func(n *v1.Node) bool { return n.Name == opts.NodeName },
	}
	pairs := []struct {
		informer cache.SharedIndexInformer
		handler  cache.ResourceEventHandler
	}{
		{infs[0], services},
		{infs[1], slices},
		{infs[2], node},
	}
	var handlerOpts cache.HandlerOptions
	if logger.GetSink() != nil {
		handlerOpts.Logger = &logger
	}
	checkers := make([]cache.DoneChecker, 0, len(pairs))
	for _, p := range pairs {
		reg, err := p.informer.AddEventHandlerWithOptions(p.handler, handlerOpts)
		if err != nil {
			return nil, fmt.Errorf("register handler: %w", err)
		}
		checkers = append(checkers, reg.HasSyncedChecker())
	}
	return checkers, nil
}

func labelsProxied[T metav1.Object](obj T) bool {
	return isProxied(obj.GetLabels())
}

// eventAdapter turns untyped informer callbacks into typed handler calls.
// It re-applies the source's selection (visible) so that an object moving
// out of the selection is seen as deleted and one moving in as added, and
// it tolerates tombstones and objects of unexpected types.
type eventAdapter[T metav1.Object] struct {
	kind    string
	logger  klog.Logger
	visible func(T) bool
	events  Events[T]
}

func (a *eventAdapter[T]) OnAdd(obj any, _ bool) {
	o, ok := a.typed(obj)
	if !ok || !a.visible(o) {
		return
	}
	a.logger.V(4).Info("Object added", "kind", a.kind, "object", klog.KObj(o))
	a.events.Add(o)
}

func (a *eventAdapter[T]) OnUpdate(oldObj, newObj any) {
	o, okOld := a.typed(oldObj)
	n, okNew := a.typed(newObj)
	if !okOld || !okNew {
		return
	}
	wasVisible, isVisible := a.visible(o), a.visible(n)
	switch {
	case wasVisible && isVisible:
		a.logger.V(4).Info("Object updated", "kind", a.kind, "object", klog.KObj(n))
		a.events.Update(o, n)
	case isVisible:
		a.logger.V(4).Info("Object entered selection", "kind", a.kind, "object", klog.KObj(n))
		a.events.Add(n)
	case wasVisible:
		a.logger.V(4).Info("Object left selection", "kind", a.kind, "object", klog.KObj(o))
		a.events.Delete(o)
	}
}

func (a *eventAdapter[T]) OnDelete(obj any) {
	if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tombstone.Obj
	}
	o, ok := a.typed(obj)
	if !ok || !a.visible(o) {
		return
	}
	a.logger.V(4).Info("Object deleted", "kind", a.kind, "object", klog.KObj(o))
	a.events.Delete(o)
}

func (a *eventAdapter[T]) typed(obj any) (T, bool) {
	o, ok := obj.(T)
	if !ok {
		a.logger.Error(nil, "Ignoring object of unexpected type", "kind", a.kind, "type", fmt.Sprintf("%T", obj))
	}
	return o, ok
}

// serialized makes the three informers' callbacks, which run on separate
// goroutines, reach the handlers one at a time: all kinds share mu.
func serialized[T any](mu *sync.Mutex, e Events[T]) Events[T] {
	return Events[T]{
		Add: func(obj T) {
			mu.Lock()
			defer mu.Unlock()
			e.Add(obj)
		},
		Update: func(oldObj, newObj T) {
			mu.Lock()
			defer mu.Unlock()
			e.Update(oldObj, newObj)
		},
		Delete: func(obj T) {
			mu.Lock()
			defer mu.Unlock()
			e.Delete(obj)
		},
		Synced: func() {
			mu.Lock()
			defer mu.Unlock()
			e.Synced()
		},
	}
}
