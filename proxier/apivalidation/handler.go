package apivalidation

import (
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/klog/v2"

	"github.com/kproxy/kproxy/informers"
)

// HandlerOptions configures a Handler.
type HandlerOptions struct {
	// Next receives the valid objects (the trackers' fan-out).
	Next informers.Handler
	// Logger gets one line per rejected object.
	Logger klog.Logger
}

// Handler is the validation in front of the trackers: it passes on valid
// objects only and keeps, per object, the version it last passed on. Like
// every informers.Handler it is not called concurrently, so it needs no lock.
type Handler struct {
	next     informers.Handler
	logger   klog.Logger
	services objectGate[*v1.Service]
	slices   objectGate[*discovery.EndpointSlice]
	// nodeErrs is the last logged problem with the Node's addresses, so a
	// Node updated every few seconds does not repeat the same line.
	nodeErrs string
}

var _ informers.Handler = (*Handler)(nil)

// NewHandler returns a validating Handler in front of opts.Next.
func NewHandler(opts HandlerOptions) *Handler {
	next := opts.Next
	return &Handler{
		next:   next,
		logger: opts.Logger,
		services: objectGate[*v1.Service]{
			kind: "Service", logKey: "service", logger: opts.Logger, validate: ValidateService,
			delivered: map[types.NamespacedName]*v1.Service{},
			add:       next.OnServiceAdd, update: next.OnServiceUpdate, remove: next.OnServiceDelete,
		},
		slices: objectGate[*discovery.EndpointSlice]{
			kind: "EndpointSlice", logKey: "endpointSlice", logger: opts.Logger, validate: ValidateEndpointSlice,
			delivered: map[types.NamespacedName]*discovery.EndpointSlice{},
			add:       next.OnEndpointSliceAdd, update: next.OnEndpointSliceUpdate, remove: next.OnEndpointSliceDelete,
		},
	}
}

// OnServiceAdd passes svc on if it is valid.
func (h *Handler) OnServiceAdd(svc *v1.Service) { h.services.set(svc) }

// OnServiceUpdate passes svc on if it is valid, as an update of the version
// passed on before; the informer's old version is not used.
func (h *Handler) OnServiceUpdate(_, svc *v1.Service) { h.services.set(svc) }

// OnServiceDelete passes on the deletion of the version passed on before.
func (h *Handler) OnServiceDelete(svc *v1.Service) { h.services.delete(svc) }

// OnServicesSynced passes the end of the initial list on.
func (h *Handler) OnServicesSynced() { h.next.OnServicesSynced() }

// OnEndpointSliceAdd passes s on if it is valid.
func (h *Handler) OnEndpointSliceAdd(s *discovery.EndpointSlice) { h.slices.set(s) }

// OnEndpointSliceUpdate passes s on if it is valid, as an update of the
// version passed on before.
func (h *Handler) OnEndpointSliceUpdate(_, s *discovery.EndpointSlice) { h.slices.set(s) }

// OnEndpointSliceDelete passes on the deletion of the version passed on before.
func (h *Handler) OnEndpointSliceDelete(s *discovery.EndpointSlice) { h.slices.delete(s) }

// OnEndpointSlicesSynced passes the end of the initial list on.
func (h *Handler) OnEndpointSlicesSynced() { h.next.OnEndpointSlicesSynced() }

// OnNodeDelete passes the deletion on.
func (h *Handler) OnNodeDelete(node *v1.Node) { h.next.OnNodeDelete(node) }

// OnNodeSynced passes the end of the initial list on.
func (h *Handler) OnNodeSynced() { h.next.OnNodeSynced() }

// OnNodeSet passes the Node on whatever its addresses: its labels and
// other addresses are still needed. Addresses kproxy cannot use are logged
// (once per change) and skipped by proxier.NodeAddresses.
func (h *Handler) OnNodeSet(node *v1.Node) {
	errs := ""
	if list := NodeAddressErrors(node); len(list) > 0 {
		errs = list.ToAggregate().Error()
	}
	if errs != "" && errs != h.nodeErrs {
		h.logger.Info("Ignoring invalid addresses of Node", "node", logRef(node), "errors", errs)
	}
	h.nodeErrs = errs
	h.next.OnNodeSet(node)
}

// objectGate holds the versions of one kind of object passed downstream.
type objectGate[T metav1.Object] struct {
	kind      string
	logKey    string // the key naming the object in log lines
	logger    klog.Logger
	validate  func(T) field.ErrorList
	delivered map[types.NamespacedName]T
	add       func(T)
	update    func(old, cur T)
	remove    func(T)
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
		g.update(prev, obj)
		return
	}
	g.add(obj)
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
	g.remove(prev)
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
