package ipvs

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/ipvs/addresses"
	"github.com/kproxy/kproxy/ipvs/vs"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/metrics"
	"github.com/kproxy/kproxy/proxier/netfilter"
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
	Handle    vs.Handle
	Addresses addresses.Manager
	// Family is the proxier's IP family; "" means IPv4.
	Family v1.IPFamily
	// Scheduler ("" means rr) and SchedulerFlags, for every virtual server.
	Scheduler      string
	SchedulerFlags vs.Flags
	// NodePorts says which node addresses get NodePort virtual servers
	// (netfilter.NodePortAddresses.ForFamily); the zero value means none.
	NodePorts netfilter.NodePortMatch
	// ExcludeCIDRs (ipvs.excludeCIDRs): virtual servers there are never deleted.
	ExcludeCIDRs []netip.Prefix
	// NodePortRange: virtual servers on node addresses with a port in it are
	// kproxy's; the zero value means 30000-32767.
	NodePortRange PortRange
	// TerminationTimeout bounds draining; 0 means vs.DefaultTerminationTimeout.
	TerminationTimeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Netfilter, when set, adds the ipsets and iptables rules step.
	Netfilter *NetfilterOptions
	// Metrics, when set, receives what IPVS mode reports itself (see
	// accounting.go): failed iptables-restores, failures per seam, and the
	// virtual servers and kube-ipvs0 addresses programmed.
	Metrics *metrics.Metrics
}

// Proxier is the IPVS Backend for one IP family. Sync is a pipeline: plan →
// addresses (bind) → ipsets and iptables rules → virtual servers and
// destinations → unbind stale addresses → account. Sync and
// ProcessTerminating are serialized by the Reconciler.
type Proxier struct {
	opts   Options
	family v1.IPFamily
	rec    *vs.Reconciler
	want6  bool

	// local and nodeIPs are from the last full sync.
	local, nodeIPs []netip.Addr
	// mem is what the last successful sync programmed; nil until a full
	// sync succeeded (a partial snapshot before that is planned full).
	mem *memory
	// unsure are virtual servers a failed sync may have created: the next
	// full sync treats them as kproxy's.
	unsure    map[vs.ServiceKey]struct{}
	last      vs.Stats
	netfilter *netfilterSync
}

var _ proxier.Backend = (*Proxier)(nil)

// New returns a Proxier. The caller decides when a sync is full
// (proxier.Runner: the first one, every one after a failure, ForceFull).
func New(opts Options) (*Proxier, error) {
	if opts.Handle == nil || opts.Addresses == nil {
		return nil, errors.New("ipvs proxier: Handle and Addresses are required")
	}
	if opts.NodePortRange == (PortRange{}) {
		opts.NodePortRange = DefaultNodePortRange()
	}
	family := opts.Family
	if family == "" {
		family = v1.IPv4Protocol
	}
	nf, err := newNetfilterSync(opts.Netfilter, family)
	if err != nil {
		return nil, err
	}
	return &Proxier{netfilter: nf, opts: opts, family: family, want6: family == v1.IPv6Protocol,
		rec:    vs.NewReconciler(vs.ReconcilerOptions{Handle: opts.Handle, Now: opts.Now, TerminationTimeout: opts.TerminationTimeout}),
		unsure: map[vs.ServiceKey]struct{}{},
	}, nil
}

// Sync brings this family's IPVS state to snap. A failed sync keeps the
// memory of the last successful one (a partial sync's edits are rolled
// back) and forgets what it knew of the sets and rules, which the next
// sync re-reads; that the next sync is full is the caller's (the Runner's)
// decision.
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
		p.netfilter.forget()
		return proxier.SyncResult{}, p.failed(fmt.Errorf("plan ipvs sync: %w", err))
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			p.abort(pl)
			return proxier.SyncResult{}, p.failed(fmt.Errorf("ipvs sync: %w", err))
		}
		if err := s.run(pl); err != nil {
			p.abort(pl)
			return proxier.SyncResult{}, p.failed(fmt.Errorf("ipvs sync: %s: %w", s.name, err))
		}
	}
	return p.account(pl), nil
}

// abort forgets a failed sync's edits. The virtual servers it wanted may
// exist now: they stay kproxy's until a full sync succeeds.
func (p *Proxier) abort(pl *syncPlan) {
	p.netfilter.forget()
	if !pl.full {
		p.mem.rollback()
	}
	for _, s := range pl.want {
		p.unsure[s.ServiceKey] = struct{}{}
	}
}

func (p *Proxier) readAddresses(pl *syncPlan) error {
	am := p.opts.Addresses
	if err := am.EnsureDevice(); err != nil {
		return atSeam(SeamAddresses, err)
	}
	bound, err := am.Bound()
	if err != nil {
		return atSeam(SeamAddresses, err)
	}
	if pl.local, err = am.Local(); err != nil {
		return atSeam(SeamAddresses, err)
	}
	pl.kernelBound = map[netip.Addr]struct{}{}
	for _, a := range bound {
		pl.kernelBound[a] = struct{}{}
	}
	pl.nodeIPs = NodePortIPs(pl.local, p.opts.NodePorts, p.opts.Family)
	return nil
}

func (p *Proxier) bindAddresses(pl *syncPlan) error {
	var errs []error
	for _, a := range pl.bind {
		if err := p.opts.Addresses.Bind(a); err != nil {
			errs = append(errs, err)
		}
	}
	return atSeam(SeamAddresses, errors.Join(errs...))
}

func (p *Proxier) syncServers(pl *syncPlan) error {
	var err error
	if pl.full {
		p.last, err = p.rec.Full(pl.want, func(k vs.ServiceKey) bool { return p.owns(pl, k) })
	} else {
		p.last, err = p.rec.Partial(pl.want, pl.remove)
	}
	return atSeam(SeamIPVS, err)
}

// owns decides which kernel virtual servers a full sync may delete: those
// on addresses of kube-ipvs0 (bound now or by a previous kproxy), on node
// addresses with a NodePort-range port, or programmed by this process;
// never the other family's or those in excludeCIDRs.
func (p *Proxier) owns(pl *syncPlan, k vs.ServiceKey) bool {
	if k.Addr.Is6() != p.want6 || slices.ContainsFunc(p.opts.ExcludeCIDRs, func(c netip.Prefix) bool { return c.Contains(k.Addr) }) {
		return false
	}
	if _, ok := pl.kernelBound[k.Addr]; ok || pl.mem.bound.has(k.Addr) {
		return true
	}
	if p.mem != nil {
		if _, ok := p.mem.owner.get(k); ok {
			return true
		}
	}
	if _, ok := p.unsure[k]; ok {
		return true
	}
	return p.opts.NodePortRange.Contains(k.Port) && (slices.Contains(pl.local, k.Addr) || slices.Contains(pl.nodeIPs, k.Addr))
}

// unbindStale removes kube-ipvs0 addresses no service uses any more (after
// their virtual servers are gone, so no traffic is accepted for nothing).
func (p *Proxier) unbindStale(pl *syncPlan) error {
	var errs []error
	for _, a := range pl.unbind {
		if err := p.opts.Addresses.Unbind(a); err != nil {
			errs = append(errs, err)
		}
	}
	return atSeam(SeamAddresses, errors.Join(errs...))
}

// account remembers what a successful sync programmed. Its result counts
// the iptables rules IPVS mode wrote (nat, filter), nothing else: the
// virtual servers and addresses go to kproxy's own metrics.
func (p *Proxier) account(pl *syncPlan) proxier.SyncResult {
	pl.mem.commit()
	p.mem, p.local, p.nodeIPs = pl.mem, pl.local, pl.nodeIPs
	if pl.full {
		clear(p.unsure)
	}
	p.report()
	return proxier.SyncResult{Full: pl.full, Rules: p.netfilter.ruleCounts()}
}

// LastStats are the kernel writes of the last sync's reconcile.
func (p *Proxier) LastStats() vs.Stats { return p.last }

// Counts are what a Proxier keeps programmed.
type Counts struct {
	// VirtualServers are the virtual servers kproxy owns.
	VirtualServers int
	// BoundAddresses are the service addresses bound to kube-ipvs0.
	BoundAddresses int
}

// Counts are what the last successful sync left programmed.
func (p *Proxier) Counts() Counts {
	if p.mem == nil {
		return Counts{}
	}
	return Counts{VirtualServers: p.mem.owner.len(), BoundAddresses: p.mem.bound.len()}
}

// Terminating lists the destinations draining at weight 0.
func (p *Proxier) Terminating() map[vs.ServiceKey][]vs.DestKey { return p.rec.Terminating() }

// ProcessTerminating runs one pass of graceful termination (see
// vs.Reconciler.ProcessTerminating).
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
