package proxier

import (
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// Snapshot converts every Service changed since the last call, and returns
// the full model with the set of service ports that changed. The model is
// shared with later snapshots, which update it in place (at 10k services
// rebuilding it cost ~20 ms per sync): a snapshot is valid until the next
// call, as the Runner uses it, and its accessors panic after that. Changes
// of a snapshot whose sync failed must be handed back with Requeue.
func (t *Tracker) Snapshot() *Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	node := t.currentNode()
	dirty := t.takeDirty()
	t.pendingServices, t.pendingSlices = 0, 0
	if m := t.opts.Metrics; m != nil {
		m.ServiceChangesPending.Set(0)
		m.EndpointChangesPending.Set(0)
	}
	changed := t.pendingFull
	t.pendingFull = map[ServicePortName]struct{}{}
	stale := t.stale
	t.stale = map[ServicePortName][]Endpoint{}
	t.initPublished()
	t.published.gen.Add(1) // earlier snapshots are stale from here on
	for name := range dirty {
		next := t.convert(name, &node)
		old := t.state[name]
		t.diff(old, next, changed, stale)
		t.unpublish(old)
		if next == nil {
			delete(t.state, name)
		} else {
			t.state[name] = next
			t.publish(next)
		}
	}
	snap := &Snapshot{
		Family:         t.opts.Family,
		Node:           node,
		Changed:        changed,
		StaleEndpoints: stale,
		TriggerTimes:   t.triggers,
		model:          t.published,
		gen:            t.published.gen.Load(),
	}
	t.triggers = nil
	return snap
}

// initPublished creates the shared model on the first Snapshot.
func (t *Tracker) initPublished() {
	if t.published == nil {
		t.published = &sharedModel{services: make(map[ServicePortName]*ServicePort, len(t.services)),
			endpoints: make(map[ServicePortName]*EndpointSet, len(t.services))}
	}
}

func (t *Tracker) publish(st *serviceState) {
	for _, ps := range st.ports {
		t.published.services[ps.port.Name] = ps.port
		t.published.endpoints[ps.port.Name] = ps.endpoints
	}
}

func (t *Tracker) unpublish(st *serviceState) {
	if st == nil {
		return
	}
	for _, ps := range st.ports {
		delete(t.published.services, ps.port.Name)
		delete(t.published.endpoints, ps.port.Name)
	}
}

// Requeue hands back the changes of a snapshot whose sync failed, so the next snapshot carries them again.
func (t *Tracker) Requeue(snap *Snapshot) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for n := range snap.Changed {
		t.pendingFull[n] = struct{}{}
	}
	for n, eps := range snap.StaleEndpoints {
		t.stale[n] = append(t.stale[n], eps...)
	}
	t.triggers = append(t.triggers, snap.TriggerTimes...)
}

func (t *Tracker) currentNode() NodeInfo {
	node := t.node
	if len(node.IPs) == 0 && t.opts.NodeIPsFallback != nil {
		node.IPs = t.opts.NodeIPsFallback(t.opts.Family)
	}
	return node
}

func (t *Tracker) takeDirty() map[types.NamespacedName]struct{} {
	dirty := t.dirty
	t.dirty = map[types.NamespacedName]struct{}{}
	if t.fullRecompute {
		t.fullRecompute = false
		for n := range t.state {
			dirty[n] = struct{}{}
		}
		for n := range t.services {
			dirty[n] = struct{}{}
		}
	}
	return dirty
}

// convert builds one Service's state from its object and slices; nil when the Service yields no ports.
func (t *Tracker) convert(name types.NamespacedName, node *NodeInfo) *serviceState {
	svc := t.services[name]
	if svc == nil {
		return nil
	}
	ports, warns := servicePortsOf(svc, t.opts.Family)
	for _, w := range warns {
		t.opts.Logger.Info("Skipping invalid part of Service", "service", klog.KObj(svc), "reason", w.Error())
	}
	if len(ports) == 0 {
		return nil
	}
	merged := mergeSlices(t.slices[name])
	st := &serviceState{ports: make([]portState, len(ports))}
	for i, p := range ports {
		st.ports[i] = portState{port: p, endpoints: CategorizeEndpoints(merged.of(p.Name), p, node)}
	}
	return st
}

// diff adds to changed every port whose rules may differ, and records UDP endpoints that went away.
func (t *Tracker) diff(old, next *serviceState, changed map[ServicePortName]struct{}, stale map[ServicePortName][]Endpoint) {
	if old != nil {
		for _, ps := range old.ports {
			n, p := ps.port.Name, ps.port
			np, ne := next.find(n)
			if np == nil || !p.Equal(np) || !ps.endpoints.Equal(ne) {
				changed[n] = struct{}{}
			}
			if p.Protocol == "UDP" {
				if gone := removedEndpoints(ps.endpoints, ne); len(gone) > 0 {
					stale[n] = append(stale[n], gone...)
				}
			}
		}
	}
	if next != nil {
		for _, ps := range next.ports {
			if p, _ := old.find(ps.port.Name); p == nil {
				changed[ps.port.Name] = struct{}{}
			}
		}
	}
}

// removedEndpoints lists usable endpoints of old that are not usable in next.
func removedEndpoints(old, next *EndpointSet) []Endpoint {
	if old == nil {
		return nil
	}
	keep := map[string]bool{}
	if next != nil {
		for i := range next.All {
			if next.All[i].Usable() {
				keep[next.All[i].String()] = true
			}
		}
	}
	var gone []Endpoint
	for i := range old.All {
		if old.All[i].Usable() && !keep[old.All[i].String()] {
			gone = append(gone, old.All[i])
		}
	}
	return gone
}
