package apivalidation

import (
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/klog/v2"

	"github.com/kproxy/kproxy/informers"
)

// HandlerOptions configures the validating handlers.
type HandlerOptions struct {
	// Next receive the valid objects, kind by kind (every family's
	// tracker; also /healthz's Node watcher).
	Next informers.Handlers
	// Logger gets one line per rejected object.
	Logger klog.Logger
}

// NewHandlers puts validation in front of opts.Next, one decorator per kind;
// a source delivers to the result. Each decorator validates an event once,
// however many handlers of its kind follow.
func NewHandlers(opts HandlerOptions) informers.Handlers {
	return informers.Handlers{
		Services:       []informers.ServiceHandler{NewServiceHandler(opts)},
		EndpointSlices: []informers.EndpointSliceHandler{NewEndpointSliceHandler(opts)},
		Nodes:          []informers.NodeHandler{NewNodeHandler(opts)},
	}
}

// NewServiceHandler passes on valid Services only, to opts.Next.Services,
// and keeps per Service the version it last passed on (see objectGate).
// Like every handler it is not called concurrently, so it needs no lock.
func NewServiceHandler(opts HandlerOptions) informers.ServiceHandler {
	g := newGate(opts.Logger, "Service", "service", ValidateService, informers.ServiceEvents(opts.Next.Services...))
	return informers.ServiceFuncs(g.events())
}

// NewEndpointSliceHandler is NewServiceHandler for EndpointSlices.
func NewEndpointSliceHandler(opts HandlerOptions) informers.EndpointSliceHandler {
	g := newGate(opts.Logger, "EndpointSlice", "endpointSlice", ValidateEndpointSlice,
		informers.EndpointSliceEvents(opts.Next.EndpointSlices...))
	return informers.EndpointSliceFuncs(g.events())
}

// NewNodeHandler passes the Node on to opts.Next.Nodes whatever its
// addresses: its labels and other addresses are still needed. Addresses
// kproxy cannot use are logged (once per change) and skipped by
// proxier.NodeAddresses.
func NewNodeHandler(opts HandlerOptions) informers.NodeHandler {
	next := informers.NodeEvents(opts.Next.Nodes...)
	c := &nodeAddressCheck{logger: opts.Logger, next: next.Add}
	return informers.NodeFuncs{Add: c.set, Delete: next.Delete, Synced: next.Synced}
}

// nodeAddressCheck logs a Node's unusable addresses.
type nodeAddressCheck struct {
	logger klog.Logger
	next   func(*v1.Node)
	// errs is the last logged problem with the Node's addresses, so a
	// Node updated every few seconds does not repeat the same line.
	errs string
}

func (c *nodeAddressCheck) set(node *v1.Node) {
	errs := ""
	if list := NodeAddressErrors(node); len(list) > 0 {
		errs = list.ToAggregate().Error()
	}
	if errs != "" && errs != c.errs {
		c.logger.Info("Ignoring invalid addresses of Node", "node", logRef(node), "errors", errs)
	}
	c.errs = errs
	c.next(node)
}

// objectGate holds the versions of one kind of object passed downstream.
type objectGate[T metav1.Object] struct {
	kind      string
	logKey    string // the key naming the object in log lines
	logger    klog.Logger
	validate  func(T) field.ErrorList
	delivered map[types.NamespacedName]T
	next      informers.Events[T]
}

func newGate[T metav1.Object](logger klog.Logger, kind, logKey string, validate func(T) field.ErrorList,
	next informers.Events[T]) *objectGate[T] {
	return &objectGate[T]{kind: kind, logKey: logKey, logger: logger, validate: validate,
		delivered: map[types.NamespacedName]T{}, next: next}
}

// events are the gate's handler calls: an add and an update both pass on
// the new version if it is valid (as an update of the version passed on
// before; the informer's old version is not used), a delete passes on the
// version passed on before, the end of the initial list passes through.
func (g *objectGate[T]) events() informers.Events[T] {
	return informers.Events[T]{Add: g.set, Update: func(_, obj T) { g.set(obj) }, Delete: g.delete, Synced: g.next.Synced}
}

// set handles an add or an update: a valid object goes downstream (as an
// update of the version downstream has, or as an add), an invalid one is
// logged and leaves downstream as it was.
func (g *objectGate[T]) set(obj T) {
	key := types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}
	prev, known := g.delivered[key]
	if errs := g.validate(obj); len(errs) > 0 {
		msg := "Ignoring invalid " + g.kind
		if known {
			msg = "Ignoring invalid update of " + g.kind + ", keeping its last valid version"
		}
		g.logger.Info(msg, g.logKey, logRef(obj), "errors", errs.ToAggregate().Error())
		return
	}
	g.delivered[key] = obj
	if known {
		g.next.Update(prev, obj)
		return
	}
	g.next.Add(obj)
}

// delete always goes through, with the version downstream has: the final
// state may be an invalid update downstream never saw (for a slice, one
// that names another Service).
func (g *objectGate[T]) delete(obj T) {
	key := types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}
	prev, known := g.delivered[key]
	if !known {
		return // downstream never had it
	}
	delete(g.delivered, key)
	g.next.Delete(prev)
}

// logRef names obj in a log line: klog.KObj, unless its namespace or name
// holds bytes klog's text format would print raw (a quote or a newline
// could forge a log line). Then it is the "namespace/name" string, which
// klog quotes and escapes.
func logRef(obj metav1.Object) any {
	ns, name := obj.GetNamespace(), obj.GetName()
	if printable(ns) && printable(name) {
		return klog.KObj(obj)
	}
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

// printable is true for ASCII without control characters, quote or backslash.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
