package informers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// ClusterOptions configures RunCluster.
type ClusterOptions struct {
	// Client talks to the API server.
	Client kubernetes.Interface
	// NodeName is this node's name; only that Node object is watched.
	NodeName string
	// ResyncPeriod is the informers' resync period (configSyncPeriod);
	// 0 disables resyncs.
	ResyncPeriod time.Duration
	// Handler receives the events. Its methods are never called concurrently.
	Handler Handler
	// Logger receives V(4) per-object events and reports of unexpected
	// objects. The zero value discards.
	Logger klog.Logger
}

func (o ClusterOptions) validate() error {
	var errs []error
	if o.Client == nil {
		errs = append(errs, errors.New("cluster source: Client is required"))
	}
	if o.Handler == nil {
		errs = append(errs, errors.New("cluster source: Handler is required"))
	}
	if o.NodeName == "" {
		errs = append(errs, errors.New("cluster source: NodeName is required"))
	}
	return errors.Join(errs...)
}

// RunCluster watches Services and EndpointSlices (filtered by
// ProxyLabelSelector) and this node's Node object, and forwards every change
// to opts.Handler. Once all initial objects have been delivered it calls
// OnServicesSynced, OnEndpointSlicesSynced and OnNodeSynced, once each. It
// returns nil when ctx is done, after the informers have stopped, so no
// Handler call happens after it returns.
func RunCluster(ctx context.Context, opts ClusterOptions) error {
	if err := opts.validate(); err != nil {
		return err
	}
	sink := &serialHandler{h: opts.Handler}
	objects := informers.NewSharedInformerFactoryWithOptions(opts.Client, opts.ResyncPeriod,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = ProxyLabelSelector }),
		informers.WithTransform(stripManagedFields))
	nodes := informers.NewSharedInformerFactoryWithOptions(opts.Client, opts.ResyncPeriod,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = nodeFieldSelector(opts.NodeName) }),
		informers.WithTransform(stripManagedFields))

	synced, err := registerHandlers(objects, nodes, sink, opts)
	if err != nil {
		return err
	}
	objects.StartWithContext(ctx)
	nodes.StartWithContext(ctx)
	defer nodes.Shutdown()
	defer objects.Shutdown()

	// Registrations (not informers) report synced only once every initial
	// object has reached the handler, which is what the Synced calls promise.
	if !cache.WaitFor(ctx, "", synced...) {
		return nil
	}
	sink.OnServicesSynced()
	sink.OnEndpointSlicesSynced()
	sink.OnNodeSynced()
	<-ctx.Done()
	return nil
}

func registerHandlers(objects, nodes informers.SharedInformerFactory, sink Handler, opts ClusterOptions) ([]cache.DoneChecker, error) {
	logger := opts.Logger
	services := &eventAdapter[*v1.Service]{
		kind: "Service", logger: logger, visible: labelsProxied[*v1.Service],
		add: sink.OnServiceAdd, update: sink.OnServiceUpdate, remove: sink.OnServiceDelete,
	}
	slices := &eventAdapter[*discovery.EndpointSlice]{
		kind: "EndpointSlice", logger: logger, visible: labelsProxied[*discovery.EndpointSlice],
		add: sink.OnEndpointSliceAdd, update: sink.OnEndpointSliceUpdate, remove: sink.OnEndpointSliceDelete,
	}
	node := &eventAdapter[*v1.Node]{
		kind: "Node", logger: logger,
		visible: func(n *v1.Node) bool { return n.Name == opts.NodeName },
		add:     sink.OnNodeSet,
		update:  func(_, n *v1.Node) { sink.OnNodeSet(n) },
		remove:  sink.OnNodeDelete,
	}
	pairs := []struct {
		informer cache.SharedIndexInformer
		handler  cache.ResourceEventHandler
	}{
		{objects.Core().V1().Services().Informer(), services},
		{objects.Discovery().V1().EndpointSlices().Informer(), slices},
		{nodes.Core().V1().Nodes().Informer(), node},
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

// stripManagedFields drops managedFields before objects enter the cache:
// the proxy never reads them and they dominate the size of small objects.
func stripManagedFields(obj any) (any, error) {
	if accessor, err := meta.Accessor(obj); err == nil && accessor.GetManagedFields() != nil {
		accessor.SetManagedFields(nil)
	}
	return obj, nil
}

func labelsProxied[T metav1.Object](obj T) bool {
	return isProxied(obj.GetLabels())
}

// eventAdapter turns untyped informer callbacks into typed Handler calls.
// It re-applies the source's selection (visible) so that an object moving
// out of the selection is seen as deleted and one moving in as added, and
// it tolerates tombstones and objects of unexpected types.
type eventAdapter[T metav1.Object] struct {
	kind    string
	logger  klog.Logger
	visible func(T) bool
	add     func(T)
	update  func(oldObj, newObj T)
	remove  func(T)
}

func (a *eventAdapter[T]) OnAdd(obj any, _ bool) {
	o, ok := a.typed(obj)
	if !ok || !a.visible(o) {
		return
	}
	a.logger.V(4).Info("Object added", "kind", a.kind, "object", klog.KObj(o))
	a.add(o)
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
		a.update(o, n)
	case isVisible:
		a.logger.V(4).Info("Object entered selection", "kind", a.kind, "object", klog.KObj(n))
		a.add(n)
	case wasVisible:
		a.logger.V(4).Info("Object left selection", "kind", a.kind, "object", klog.KObj(o))
		a.remove(o)
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
	a.remove(o)
}

func (a *eventAdapter[T]) typed(obj any) (T, bool) {
	o, ok := obj.(T)
	if !ok {
		a.logger.Error(nil, "Ignoring object of unexpected type", "kind", a.kind, "type", fmt.Sprintf("%T", obj))
	}
	return o, ok
}

// serialHandler makes the three informers' callbacks, which run on separate
// goroutines, reach the Handler one at a time.
type serialHandler struct {
	mu sync.Mutex
	h  Handler
}

var _ Handler = (*serialHandler)(nil)

func (s *serialHandler) OnServiceAdd(svc *v1.Service) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.h.OnServiceAdd(svc)
}

func (s *serialHandler) OnServiceUpdate(oldSvc, newSvc *v1.Service) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.h.OnServiceUpdate(oldSvc, newSvc)
}

func (s *serialHandler) OnServiceDelete(svc *v1.Service) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.h.OnServiceDelete(svc)
}

func (s *serialHandler) OnServicesSynced() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.h.OnServicesSynced()
}

func (s *serialHandler) OnEndpointSliceAdd(slice *discovery.EndpointSlice) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.h.OnEndpointSliceAdd(slice)
}

func (s *serialHandler) OnEndpointSliceUpdate(oldSlice, newSlice *discovery.EndpointSlice) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.h.OnEndpointSliceUpdate(oldSlice, newSlice)
}

func (s *serialHandler) OnEndpointSliceDelete(slice *discovery.EndpointSlice) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.h.OnEndpointSliceDelete(slice)
}

func (s *serialHandler) OnEndpointSlicesSynced() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.h.OnEndpointSlicesSynced()
}

func (s *serialHandler) OnNodeSet(node *v1.Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.h.OnNodeSet(node)
}

func (s *serialHandler) OnNodeDelete(node *v1.Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.h.OnNodeDelete(node)
}

func (s *serialHandler) OnNodeSynced() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.h.OnNodeSynced()
}
