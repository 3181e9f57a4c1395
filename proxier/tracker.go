package proxier

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/kproxy/kproxy/proxier/apivalidation"
	"github.com/kproxy/kproxy/proxier/metrics"
)

// TrackerOptions configures a Tracker.
type TrackerOptions struct {
	Family   v1.IPFamily
	NodeName string
	Logger   klog.Logger
	// OnChange is called (without locks held) whenever a change is pending.
	OnChange func()
	// NodeIPsFallback supplies node IPs when the Node object has none of this family.
	NodeIPsFallback func(v1.IPFamily) []netip.Addr
	Now             func() time.Time
	// Metrics, when set, counts Service and EndpointSlice changes (give it to one family's tracker only).
	Metrics *metrics.Metrics
}

// Tracker follows Services, EndpointSlices and the local Node for one IP
// family. Events only record which Services are dirty; the conversion to
// service ports and endpoint sets happens once per sync in Snapshot, so a
// burst of events costs one conversion.
type Tracker struct {
	opts TrackerOptions

	mu       sync.Mutex
	services map[types.NamespacedName]*v1.Service
	// slices are each Service's EndpointSlices, sorted by name.
	slices map[types.NamespacedName][]namedSlice
	dirty  map[types.NamespacedName]struct{}
	// pendingServices / pendingSlices count events since the last snapshot, for the *_changes_pending gauges.
	pendingServices, pendingSlices int
	node                           NodeInfo
	nodeSeen                       bool
	synced                         struct{ services, slices bool }
	// fullRecompute is set when node topology changes: every service must be re-categorized.
	fullRecompute bool
	triggers      []time.Time

	// state is the model as of the last Snapshot.
	state map[types.NamespacedName]*serviceState
	// published is the model snapshots share: each Snapshot updates it for
	// the changed Services only and moves it to a new generation.
	published   *sharedModel
	stale       map[ServicePortName][]Endpoint
	pendingFull map[ServicePortName]struct{}
}

// serviceState is one Service's converted ports and categorized endpoints,
// as a list: a Service has one or a few ports, and two maps keyed by the
// 64-byte ServicePortName cost about 1.5 kB per Service even with one entry.
type serviceState struct {
	ports []portState
}

// portState is one service port and its categorized endpoints.
type portState struct {
	port      *ServicePort
	endpoints *EndpointSet
}

// find returns the service port name and its endpoints; nils when st is
// nil or has no such port.
func (st *serviceState) find(name ServicePortName) (*ServicePort, *EndpointSet) {
	if st == nil {
		return nil, nil
	}
	for _, ps := range st.ports {
		if ps.port.Name == name {
			return ps.port, ps.endpoints
		}
	}
	return nil, nil
}

// NewTracker returns an empty tracker.
func NewTracker(opts TrackerOptions) *Tracker {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.OnChange == nil {
		opts.OnChange = func() {}
	}
	return &Tracker{
		opts:        opts,
		services:    map[types.NamespacedName]*v1.Service{},
		slices:      map[types.NamespacedName][]namedSlice{},
		dirty:       map[types.NamespacedName]struct{}{},
		state:       map[types.NamespacedName]*serviceState{},
		stale:       map[ServicePortName][]Endpoint{},
		pendingFull: map[ServicePortName]struct{}{},
		node:        NodeInfo{Name: opts.NodeName},
	}
}

// Family is the tracker's IP family.
func (t *Tracker) Family() v1.IPFamily { return t.opts.Family }

// Initialized is true once Services and EndpointSlices have both been listed:
// no rules are written before, so a restart never installs a partial world.
func (t *Tracker) Initialized() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.synced.services && t.synced.slices
}

func (t *Tracker) markDirty(name types.NamespacedName, slice bool) {
	t.mu.Lock()
	t.dirty[name] = struct{}{}
	if slice {
		t.pendingSlices++
	} else {
		t.pendingServices++
	}
	t.countChange(slice)
	t.mu.Unlock()
	t.opts.OnChange()
}

// countChange updates the change metrics; callers hold t.mu.
func (t *Tracker) countChange(slice bool) {
	m := t.opts.Metrics
	if m == nil {
		return
	}
	if slice {
		m.EndpointChangesTotal.Inc()
		m.EndpointChangesPending.Set(float64(t.pendingSlices))
		return
	}
	m.ServiceChangesTotal.Inc()
	m.ServiceChangesPending.Set(float64(t.pendingServices))
}

// OnServiceAdd records a new Service.
func (t *Tracker) OnServiceAdd(svc *v1.Service) { t.setService(svc) }

// OnServiceUpdate records a changed Service.
func (t *Tracker) OnServiceUpdate(_, svc *v1.Service) { t.setService(svc) }

// OnServiceDelete forgets a Service.
func (t *Tracker) OnServiceDelete(svc *v1.Service) {
	name := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	t.mu.Lock()
	delete(t.services, name)
	t.mu.Unlock()
	t.markDirty(name, false)
}

func (t *Tracker) setService(svc *v1.Service) {
	name := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	t.mu.Lock()
	t.services[name] = svc
	t.mu.Unlock()
	t.markDirty(name, false)
}

// OnServicesSynced marks the initial Service list as complete.
func (t *Tracker) OnServicesSynced() {
	t.mu.Lock()
	t.synced.services = true
	t.mu.Unlock()
	t.opts.OnChange()
}

// OnEndpointSliceAdd records a new EndpointSlice.
func (t *Tracker) OnEndpointSliceAdd(slice *discovery.EndpointSlice) { t.setSlice(slice, false) }

// OnEndpointSliceUpdate records a changed EndpointSlice. A slice whose
// service-name label changed leaves its old Service.
func (t *Tracker) OnEndpointSliceUpdate(old, slice *discovery.EndpointSlice) {
	if old != nil && old.Labels[discovery.LabelServiceName] != slice.Labels[discovery.LabelServiceName] {
		t.setSlice(old, true)
	}
	t.setSlice(slice, false)
}

// OnEndpointSliceDelete forgets an EndpointSlice.
func (t *Tracker) OnEndpointSliceDelete(slice *discovery.EndpointSlice) { t.setSlice(slice, true) }

// OnEndpointSlicesSynced marks the initial EndpointSlice list as complete.
func (t *Tracker) OnEndpointSlicesSynced() {
	t.mu.Lock()
	t.synced.slices = true
	t.mu.Unlock()
	t.opts.OnChange()
}

func (t *Tracker) setSlice(slice *discovery.EndpointSlice, deleted bool) {
	fam, ok := sliceFamily(slice)
	if !ok {
		if slice.AddressType != discovery.AddressTypeFQDN || !deleted {
			t.opts.Logger.V(4).Info("Ignoring EndpointSlice with unsupported address type",
				"endpointSlice", klog.KObj(slice), "addressType", slice.AddressType)
		}
		return
	}
	if fam != t.opts.Family {
		return
	}
	svc, ok := ServiceNameOfSlice(slice)
	if !ok {
		t.opts.Logger.Info("Ignoring EndpointSlice without service name label", "endpointSlice", klog.KObj(slice))
		return
	}
	var eps sliceEndpoints
	if !deleted {
		var warns []error
		eps, warns = endpointsFromSlice(slice, svc, fam, t.opts.NodeName)
		for _, w := range warns {
			t.opts.Logger.Info("Skipping invalid part of EndpointSlice", "endpointSlice", klog.KObj(slice), "reason", w.Error())
		}
	}
	t.mu.Lock()
	t.storeSlice(svc, slice.Name, eps, deleted)
	t.noteTrigger(slice)
	t.mu.Unlock()
	t.markDirty(svc, true)
}

func (t *Tracker) storeSlice(svc types.NamespacedName, name string, eps sliceEndpoints, deleted bool) {
	list := t.slices[svc]
	i, found := slices.BinarySearchFunc(list, name, func(s namedSlice, n string) int { return strings.Compare(s.name, n) })
	switch {
	case deleted && !found:
		return
	case deleted && len(list) == 1:
		delete(t.slices, svc)
		return
	case deleted:
		list = slices.Delete(list, i, i+1)
	case found:
		list[i].eps = eps
	default:
		list = slices.Insert(list, i, namedSlice{name: name, eps: eps})
	}
	t.slices[svc] = list
}

// noteTrigger records the EndpointSlice controller's change time for network_programming_duration_seconds.
func (t *Tracker) noteTrigger(slice *discovery.EndpointSlice) {
	v := slice.Annotations[v1.EndpointsLastChangeTriggerTime]
	if v == "" {
		return
	}
	if ts, err := time.Parse(time.RFC3339Nano, v); err == nil {
		t.triggers = append(t.triggers, ts)
	}
}

// OnNodeSet records this node's labels and addresses. A zone change re-categorizes every service.
func (t *Tracker) OnNodeSet(node *v1.Node) {
	if t.opts.NodeName != "" && node.Name != t.opts.NodeName {
		return
	}
	info := NodeInfo{Name: node.Name, Labels: node.Labels, IPs: NodeAddresses(node, t.opts.Family)}
	t.mu.Lock()
	changed := !t.nodeSeen || info.Labels[LabelTopologyZone] != t.node.Labels[LabelTopologyZone] ||
		!equalAddrs(info.IPs, t.node.IPs)
	t.node, t.nodeSeen = info, true
	if changed {
		t.fullRecompute = true
	}
	t.mu.Unlock()
	if changed {
		t.opts.OnChange()
	}
}

// OnNodeDelete keeps the last known labels: rules must not flap while the Node object is recreated.
func (t *Tracker) OnNodeDelete(*v1.Node) {}

// OnNodeSynced is a no-op: rules do not wait for the Node object.
func (t *Tracker) OnNodeSynced() {}

// NodeAddresses returns a Node's InternalIP then ExternalIP addresses of one
// family, parsed as upstream does; an address that does not parse (or has an
// IPv6 zone, which no rule can carry) is skipped.
func NodeAddresses(node *v1.Node, family v1.IPFamily) []netip.Addr {
	var out []netip.Addr
	for _, typ := range []v1.NodeAddressType{v1.NodeInternalIP, v1.NodeExternalIP} {
		for _, a := range node.Status.Addresses {
			if a.Type != typ {
				continue
			}
			if ip, err := apivalidation.ParseAddr(a.Address); err == nil && FamilyOf(ip) == family {
				out = append(out, ip)
			}
		}
	}
	return out
}

func equalAddrs(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
