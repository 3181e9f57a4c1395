package ipvs

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/kproxy/kproxy/ipvs/vs"
	"github.com/kproxy/kproxy/proxier"
)

// memory is what the Proxier programmed, indexed so that a partial sync
// reads and edits only the entries of the service ports that changed. A
// partial sync edits it in place (journaled: a failure rolls the edits
// back); a full sync builds a new one.
type memory struct {
	// owner maps each programmed virtual server to its service port; keys
	// is the inverse.
	owner *journal[vs.ServiceKey, proxier.ServicePortName]
	keys  *journal[proxier.ServicePortName, []vs.ServiceKey]
	// contested lists, per virtual server, the other service ports that
	// want it (rare: e.g. two Services with the same external IP and port).
	contested *journal[vs.ServiceKey, []proxier.ServicePortName]
	// bindOf is each service port's kube-ipvs0 addresses; bound counts the
	// ports wanting each address (an address is bound while counted).
	bindOf *journal[proxier.ServicePortName, []netip.Addr]
	bound  refCount[netip.Addr]
}

func newMemory() *memory {
	return &memory{
		owner: newJournal[vs.ServiceKey, proxier.ServicePortName](), keys: newJournal[proxier.ServicePortName, []vs.ServiceKey](),
		contested: newJournal[vs.ServiceKey, []proxier.ServicePortName](),
		bindOf:    newJournal[proxier.ServicePortName, []netip.Addr](), bound: newRefCount[netip.Addr](),
	}
}

func (m *memory) commit() {
	m.owner.commit()
	m.keys.commit()
	m.contested.commit()
	m.bindOf.commit()
	m.bound.commit()
}

func (m *memory) rollback() {
	m.rollbackServers()
	m.bindOf.rollback()
	m.bound.rollback()
}

// rollbackServers undoes the virtual server assignment only.
func (m *memory) rollbackServers() {
	m.owner.rollback()
	m.keys.rollback()
	m.contested.rollback()
}

// syncPlan is what one sync will do.
type syncPlan struct {
	full bool
	// mem is the memory being edited: p.mem on a partial sync, a new one
	// on a full sync.
	mem     *memory
	desired *Desired
	// kernelBound is kube-ipvs0 as listed by a full sync (nil otherwise).
	kernelBound map[netip.Addr]struct{}
	// bind and unbind are the kube-ipvs0 addresses to add and remove, sorted.
	bind, unbind []netip.Addr
	local        []netip.Addr
	nodeIPs      []netip.Addr
	want         []vs.DesiredServer
	remove       []vs.ServiceKey
}

// plan computes the desired state: on a full sync from the whole snapshot
// and freshly listed addresses, otherwise for the changed ports only. A
// partial snapshot is planned full when no full sync has succeeded yet:
// there is no memory to edit.
func (p *Proxier) plan(snap *proxier.Snapshot) (*syncPlan, error) {
	pl := &syncPlan{full: snap.Full || p.mem == nil, mem: p.mem, local: p.local, nodeIPs: p.nodeIPs}
	only := maps.Clone(snap.Changed)
	if pl.full {
		if err := p.readAddresses(pl); err != nil {
			return nil, err
		}
		pl.mem = newMemory()
		only = make(map[proxier.ServicePortName]struct{}, snap.Len())
		for name := range snap.All() {
			only[name] = struct{}{}
		}
	}
	if only == nil {
		only = map[proxier.ServicePortName]struct{}{}
	}
	p.planBind(pl, snap, only)
	p.planServers(pl, snap, only)
	return pl, nil
}

// planBind updates the memory's kube-ipvs0 addresses for the ports in
// names and lists what to bind and unbind: against the kernel's listing on
// a full sync, against memory otherwise.
func (p *Proxier) planBind(pl *syncPlan, snap *proxier.Snapshot, names map[proxier.ServicePortName]struct{}) {
	for name := range names {
		var next []netip.Addr
		if sp, ok := snap.Service(name); ok {
			next = portBindAddrs(sp, pl.local, p.want6)
		}
		prev, _ := pl.mem.bindOf.get(name)
		if slices.Equal(prev, next) {
			continue
		}
		for _, a := range prev {
			pl.mem.bound.dec(a)
		}
		for _, a := range next {
			pl.mem.bound.inc(a)
		}
		if len(next) == 0 {
			pl.mem.bindOf.delete(name)
		} else {
			pl.mem.bindOf.set(name, next)
		}
	}
	if !pl.full {
		pl.bind, pl.unbind = pl.mem.bound.transitions()
	} else {
		for a := range pl.mem.bound.m {
			if _, ok := pl.kernelBound[a]; !ok {
				pl.bind = append(pl.bind, a)
			}
		}
		for a := range pl.kernelBound {
			if !pl.mem.bound.has(a) {
				pl.unbind = append(pl.unbind, a)
			}
		}
	}
	slices.SortFunc(pl.bind, netip.Addr.Compare)
	slices.SortFunc(pl.unbind, netip.Addr.Compare)
}

// boundSorted is every kube-ipvs0 address the plan leaves bound, sorted.
func (pl *syncPlan) boundSorted() []netip.Addr {
	return slices.SortedFunc(maps.Keys(pl.mem.bound.m), netip.Addr.Compare)
}

// planServers builds the virtual servers of the ports in only and assigns
// them. A partial sync that frees a contested virtual server also rebuilds
// the unchanged service ports that wanted it, so they take it over.
func (p *Proxier) planServers(pl *syncPlan, snap *proxier.Snapshot, only map[proxier.ServicePortName]struct{}) {
	opts := BuildOptions{Scheduler: p.opts.Scheduler, SchedulerFlags: p.opts.SchedulerFlags,
		NodePortIPs: pl.nodeIPs, LocalAddresses: pl.local}
	for range 3 {
		pl.desired = &Desired{Servers: desiredServers(snap, only, opts)}
		pl.want, pl.remove = nil, nil
		assignServers(pl)
		extra := orphanClaimants(pl, snap, only)
		if pl.full || len(extra) == 0 {
			break
		}
		pl.mem.rollbackServers()
		for _, n := range extra {
			only[n] = struct{}{}
		}
	}
	if pl.full {
		pl.mem.commit()
	}
}

// orphanClaimants are the unchanged service ports that want a virtual
// server the plan is about to remove.
func orphanClaimants(pl *syncPlan, snap *proxier.Snapshot, only map[proxier.ServicePortName]struct{}) []proxier.ServicePortName {
	var out []proxier.ServicePortName
	for _, k := range pl.remove {
		claimants, _ := pl.mem.contested.get(k)
		for _, n := range claimants {
			_, changed := only[n]
			if _, exists := snap.Service(n); exists && !changed && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// assignServers gives each virtual server to one service port (the first
// in name order on a full sync; on a partial sync an unchanged port keeps
// its own) and lists the changed ports' virtual servers that nobody wants.
func assignServers(pl *syncPlan) {
	m := pl.mem
	names := slices.SortedFunc(maps.Keys(pl.desired.Servers), proxier.ServicePortName.Compare)
	var old []vs.ServiceKey
	for _, name := range names {
		keys, _ := m.keys.get(name)
		for _, k := range keys {
			if o, _ := m.owner.get(k); o == name {
				m.owner.delete(k)
				old = append(old, k)
			}
		}
		m.keys.delete(name)
	}
	releaseClaims(pl)
	for _, name := range names {
		for _, s := range pl.desired.Servers[name] {
			if _, taken := m.owner.get(s.ServiceKey); taken {
				claimants, _ := m.contested.get(s.ServiceKey)
				m.contested.set(s.ServiceKey, append(slices.Clone(claimants), name))
				continue
			}
			keys, _ := m.keys.get(name)
			m.owner.set(s.ServiceKey, name)
			m.keys.set(name, append(keys, s.ServiceKey))
			pl.want = append(pl.want, s)
		}
	}
	for _, k := range old {
		if _, ok := m.owner.get(k); !ok {
			pl.remove = append(pl.remove, k)
		}
	}
}

// releaseClaims drops the planned ports from the contested lists (they
// claim again below if they still want the virtual server).
func releaseClaims(pl *syncPlan) {
	c := pl.mem.contested
	for k, claimants := range c.m {
		rest := slices.DeleteFunc(slices.Clone(claimants), func(n proxier.ServicePortName) bool {
			_, ok := pl.desired.Servers[n]
			return ok
		})
		switch {
		case len(rest) == len(claimants):
		case len(rest) > 0:
			c.set(k, rest)
		default:
			c.delete(k)
		}
	}
}
