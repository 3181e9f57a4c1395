package ipvs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/proxier"
)

// PortRange is an inclusive port range.
type PortRange struct{ First, Last uint16 }

// Contains reports whether p is in the range.
func (r PortRange) Contains(p uint16) bool { return p >= r.First && p <= r.Last }

// DefaultNodePortRange is the apiserver's default service-node-port-range.
func DefaultNodePortRange() PortRange { return PortRange{First: 30000, Last: 32767} }

// Options configure a Proxier.
type Options struct {
	// Handle is the IPVS seam (required); Addresses the kube-ipvs0 seam (required).
	Handle    Handle
	Addresses AddressManager
	// Family is the proxier's IP family; "" means IPv4.
	Family v1.IPFamily
	// Scheduler ("" means rr) and SchedulerFlags, for every virtual server.
	Scheduler      string
	SchedulerFlags Flags
	// NodePorts says which node addresses get NodePort virtual servers
	// (config.NodePortAddresses.ForFamily); the zero value means none.
	NodePorts config.NodePortMatch
	// ExcludeCIDRs (ipvs.excludeCIDRs): virtual servers there are never deleted.
	ExcludeCIDRs []netip.Prefix
	// NodePortRange: virtual servers on node addresses with a port in it are
	// kproxy's; the zero value means 30000-32767.
	NodePortRange PortRange
	// TerminationTimeout bounds draining; 0 means DefaultTerminationTimeout.
	TerminationTimeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Netfilter, when set, adds the ipsets and iptables rules step.
	Netfilter *NetfilterOptions
}

// Proxier is the IPVS Backend for one IP family. Sync is a pipeline: plan →
// addresses (bind) → virtual servers and destinations → account (unbind
// stale, remember). Sync and ProcessTerminating are serialized.
type Proxier struct {
	opts  Options
	rec   *Reconciler
	want6 bool

	needFull bool
	// bound is kube-ipvs0's addresses after the last sync.
	bound map[netip.Addr]struct{}
	// local and nodeIPs are from the last full sync.
	local, nodeIPs []netip.Addr
	// owner maps each programmed virtual server to its service port; keys
	// is the inverse.
	owner map[ServiceKey]proxier.ServicePortName
	keys  map[proxier.ServicePortName][]ServiceKey
	// contested lists, per virtual server, the other service ports that
	// want it (rare: e.g. two Services with the same external IP and port).
	contested map[ServiceKey][]proxier.ServicePortName
	last      Stats
	netfilter *netfilterSync
}

var _ proxier.Backend = (*Proxier)(nil)

// New returns a Proxier whose first Sync is full.
func New(opts Options) (*Proxier, error) {
	if opts.Handle == nil || opts.Addresses == nil {
		return nil, errors.New("ipvs proxier: Handle and Addresses are required")
	}
	if opts.NodePortRange == (PortRange{}) {
		opts.NodePortRange = DefaultNodePortRange()
	}
	nf, err := newNetfilterSync(opts.Netfilter, opts.Family)
	if err != nil {
		return nil, err
	}
	return &Proxier{netfilter: nf,
		opts: opts, want6: opts.Family == v1.IPv6Protocol, needFull: true,
		rec:   NewReconciler(ReconcilerOptions{Handle: opts.Handle, Now: opts.Now, TerminationTimeout: opts.TerminationTimeout}),
		bound: map[netip.Addr]struct{}{}, owner: map[ServiceKey]proxier.ServicePortName{},
		keys: map[proxier.ServicePortName][]ServiceKey{}, contested: map[ServiceKey][]proxier.ServicePortName{},
	}, nil
}

// syncPlan is what one sync will do.
type syncPlan struct {
	full      bool
	desired   *Desired
	bound     map[netip.Addr]struct{}
	local     []netip.Addr
	nodeIPs   []netip.Addr
	want      []DesiredServer
	remove    []ServiceKey
	owner     map[ServiceKey]proxier.ServicePortName
	keys      map[proxier.ServicePortName][]ServiceKey
	contested map[ServiceKey][]proxier.ServicePortName
}

// Sync brings this family's IPVS state to snap. On error nothing is
// remembered and the next sync is full.
func (p *Proxier) Sync(ctx context.Context, snap *proxier.Snapshot) (proxier.SyncResult, error) {
	steps := []struct {
		name string
		run  func(*syncPlan) error
	}{
		{"bind addresses", p.bindAddresses},
		// Masquerade marks and filters go in before virtual servers, so the
		// first connection to a new service is already NATed correctly.
		{"sync ipsets and iptables rules", func(pl *syncPlan) error { return p.syncNetfilter(ctx, snap, pl) }},
		{"sync virtual servers", p.syncServers},
		{"unbind stale addresses", p.unbindStale},
	}
	pl, err := p.plan(snap)
	if err != nil {
		p.needFull = true
		return proxier.SyncResult{}, fmt.Errorf("plan ipvs sync: %w", err)
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			p.needFull = true
			return proxier.SyncResult{}, fmt.Errorf("ipvs sync: %w", err)
		}
		if err := s.run(pl); err != nil {
			p.needFull = true
			return proxier.SyncResult{}, fmt.Errorf("ipvs sync: %s: %w", s.name, err)
		}
	}
	return p.account(pl), nil
}

// plan computes the desired state: on a full sync from the whole snapshot
// and freshly listed addresses, otherwise for the changed ports only.
func (p *Proxier) plan(snap *proxier.Snapshot) (*syncPlan, error) {
	pl := &syncPlan{full: snap.Full || p.needFull, bound: maps.Clone(p.bound), local: p.local, nodeIPs: p.nodeIPs}
	if pl.full {
		if err := p.readAddresses(pl); err != nil {
			return nil, err
		}
	}
	opts := BuildOptions{Scheduler: p.opts.Scheduler, SchedulerFlags: p.opts.SchedulerFlags,
		NodePortIPs: pl.nodeIPs, LocalAddresses: pl.local}
	if !pl.full {
		opts.Only = maps.Clone(snap.Changed)
		if opts.Only == nil {
			opts.Only = map[proxier.ServicePortName]struct{}{}
		}
	}
	// A partial sync that frees a contested virtual server also rebuilds
	// the unchanged service ports that wanted it, so they take it over.
	for range 3 {
		pl.desired = BuildDesired(snap, opts)
		pl.want, pl.remove = nil, nil
		if pl.full {
			pl.owner, pl.keys = map[ServiceKey]proxier.ServicePortName{}, map[proxier.ServicePortName][]ServiceKey{}
			pl.contested = map[ServiceKey][]proxier.ServicePortName{}
		} else {
			pl.owner, pl.keys, pl.contested = maps.Clone(p.owner), maps.Clone(p.keys), maps.Clone(p.contested)
		}
		p.assignServers(pl)
		extra := orphanClaimants(pl, snap, opts.Only)
		if pl.full || len(extra) == 0 {
			break
		}
		for _, n := range extra {
			opts.Only[n] = struct{}{}
		}
	}
	return pl, nil
}

// orphanClaimants are the unchanged service ports that want a virtual
// server the plan is about to remove.
func orphanClaimants(pl *syncPlan, snap *proxier.Snapshot, only map[proxier.ServicePortName]struct{}) []proxier.ServicePortName {
	var out []proxier.ServicePortName
	for _, k := range pl.remove {
		for _, n := range pl.contested[k] {
			_, changed := only[n]
			if _, exists := snap.Services[n]; exists && !changed && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

func (p *Proxier) readAddresses(pl *syncPlan) error {
	am := p.opts.Addresses
	if err := am.EnsureDevice(); err != nil {
		return err
	}
	bound, err := am.Bound()
	if err != nil {
		return err
	}
	if pl.local, err = am.Local(); err != nil {
		return err
	}
	pl.bound = map[netip.Addr]struct{}{}
	for _, a := range bound {
		pl.bound[a] = struct{}{}
	}
	pl.nodeIPs = NodePortIPs(pl.local, p.opts.NodePorts, p.opts.Family)
	return nil
}

// assignServers gives each virtual server to one service port (the first
// in name order on a full sync; on a partial sync an unchanged port keeps
// its own) and lists the changed ports' virtual servers that nobody wants.
func (p *Proxier) assignServers(pl *syncPlan) {
	names := slices.SortedFunc(maps.Keys(pl.desired.Servers), proxier.ServicePortName.Compare)
	var old []ServiceKey
	for _, name := range names {
		for _, k := range pl.keys[name] {
			if pl.owner[k] == name {
				delete(pl.owner, k)
				old = append(old, k)
			}
		}
		delete(pl.keys, name)
	}
	for k, claimants := range pl.contested {
		if rest := slices.DeleteFunc(slices.Clone(claimants), func(n proxier.ServicePortName) bool {
			_, ok := pl.desired.Servers[n]
			return ok
		}); len(rest) > 0 {
			pl.contested[k] = rest
		} else {
			delete(pl.contested, k)
		}
	}
	for _, name := range names {
		for _, s := range pl.desired.Servers[name] {
			if _, taken := pl.owner[s.ServiceKey]; taken {
				pl.contested[s.ServiceKey] = append(pl.contested[s.ServiceKey], name)
				continue
			}
			pl.owner[s.ServiceKey] = name
			pl.keys[name] = append(pl.keys[name], s.ServiceKey)
			pl.want = append(pl.want, s)
		}
	}
	for _, k := range old {
		if _, ok := pl.owner[k]; !ok {
			pl.remove = append(pl.remove, k)
		}
	}
}

func (p *Proxier) bindAddresses(pl *syncPlan) error {
	var errs []error
	for _, a := range pl.desired.Bind {
		if _, ok := pl.bound[a]; ok {
			continue
		}
		if err := p.opts.Addresses.Bind(a); err != nil {
			errs = append(errs, err)
			continue
		}
		pl.bound[a] = struct{}{}
	}
	return errors.Join(errs...)
}

func (p *Proxier) syncServers(pl *syncPlan) error {
	var err error
	if pl.full {
		p.last, err = p.rec.Full(pl.want, func(k ServiceKey) bool { return p.owns(pl, k) })
	} else {
		p.last, err = p.rec.Partial(pl.want, pl.remove)
	}
	return err
}

// owns decides which kernel virtual servers a full sync may delete: those
// on addresses of kube-ipvs0 (bound now or by a previous kproxy), on node
// addresses with a NodePort-range port, or programmed by this process;
// never the other family's or those in excludeCIDRs.
func (p *Proxier) owns(pl *syncPlan, k ServiceKey) bool {
	if k.Addr.Is6() != p.want6 || slices.ContainsFunc(p.opts.ExcludeCIDRs, func(c netip.Prefix) bool { return c.Contains(k.Addr) }) {
		return false
	}
	if _, ok := pl.bound[k.Addr]; ok {
		return true
	}
	if _, ok := p.owner[k]; ok {
		return true
	}
	return p.opts.NodePortRange.Contains(k.Port) && (slices.Contains(pl.local, k.Addr) || slices.Contains(pl.nodeIPs, k.Addr))
}

// unbindStale removes kube-ipvs0 addresses no service uses any more (after
// their virtual servers are gone, so no traffic is accepted for nothing).
func (p *Proxier) unbindStale(pl *syncPlan) error {
	var errs []error
	for a := range pl.bound {
		if _, ok := slices.BinarySearchFunc(pl.desired.Bind, a, netip.Addr.Compare); ok {
			continue
		}
		if err := p.opts.Addresses.Unbind(a); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(pl.bound, a)
	}
	return errors.Join(errs...)
}

func (p *Proxier) account(pl *syncPlan) proxier.SyncResult {
	p.needFull = false
	p.bound, p.local, p.nodeIPs = pl.bound, pl.local, pl.nodeIPs
	p.owner, p.keys, p.contested = pl.owner, pl.keys, pl.contested
	return proxier.SyncResult{Full: pl.full, Rules: map[string]int{
		"ipvs-virtual-servers": len(p.owner), "kube-ipvs0-addresses": len(p.bound),
	}}
}

// LastStats are the kernel writes of the last sync's reconcile.
func (p *Proxier) LastStats() Stats { return p.last }

// Terminating lists the destinations draining at weight 0.
func (p *Proxier) Terminating() map[ServiceKey][]DestKey { return p.rec.Terminating() }

// ProcessTerminating runs one pass of graceful termination (see
// Reconciler.ProcessTerminating).
func (p *Proxier) ProcessTerminating() (int, error) { return p.rec.ProcessTerminating() }

// RunTermination runs ProcessTerminating on every tick until ctx ends,
// reporting each pass to report (which may be nil). Upstream checks every
// minute: pass time.NewTicker(time.Minute).C.
func (p *Proxier) RunTermination(ctx context.Context, ticks <-chan time.Time, report func(deleted int, err error)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
			n, err := p.ProcessTerminating()
			if report != nil {
				report(n, err)
			}
		}
	}
}
