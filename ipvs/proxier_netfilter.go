package ipvs

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/ipvs/ipset"
	"github.com/kproxy/kproxy/ipvs/rules"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
)

// NetfilterOptions turn on the ipsets and iptables rules of IPVS mode as a
// step of Proxier.Sync (after the addresses are bound, before the virtual
// servers). Without them the Proxier programs IPVS only.
type NetfilterOptions struct {
	// IPSet (ipset.Exec or ipset.Fake) and Restorer (of the proxier's family) are required.
	IPSet    ipset.Interface
	Restorer netfilter.Restorer
	Rules    rules.Options
	// NodeIP is the node's primary IP, checked against LB source ranges;
	// invalid means the snapshot's first node IP of the family.
	NodeIP netip.Addr
}

// netfilterSync is the ipset + iptables step of one Proxier.
type netfilterSync struct {
	opts  NetfilterOptions
	sets  *ipset.Syncer
	rules *rules.Applier
	// index and written are what the last successful step wrote: each
	// service port's set members, and the rules' iptables-restore input
	// (without jump insertions). nil means unknown: the next step lists
	// the kernel's sets, reads the tables and rewrites the rules.
	index   *setIndex
	written []byte
	// counts are the rules per table of the last rules written.
	counts map[string]int
}

func newNetfilterSync(opts *NetfilterOptions, family v1.IPFamily) (*netfilterSync, error) {
	if opts == nil {
		return nil, nil
	}
	if opts.IPSet == nil || opts.Restorer == nil {
		return nil, errors.New("ipvs proxier: Netfilter needs IPSet and Restorer")
	}
	if opts.Rules.MasqueradeMark == "" {
		return nil, errors.New("ipvs proxier: Netfilter.Rules.MasqueradeMark is required")
	}
	return &netfilterSync{
		opts:  *opts,
		sets:  ipset.NewSyncer(ipset.SyncerOptions{IPSet: opts.IPSet, Family: family}),
		rules: rules.NewApplier(opts.Restorer),
	}, nil
}

// forget makes the next step start from the kernel (after any failure).
func (nf *netfilterSync) forget() {
	if nf != nil {
		nf.index, nf.written = nil, nil
	}
}

// ruleCounts are the rules per table last written (nil without the step).
func (nf *netfilterSync) ruleCounts() map[string]int {
	if nf == nil {
		return nil
	}
	return nf.counts
}

// syncNetfilter writes the sets (one ipset restore), then the rules that
// match them (one iptables-restore). A full sync lists the kernel's sets,
// writes the difference and rewrites the rules. A partial sync adds and
// deletes only the members the changed service ports brought or took
// away, and runs no iptables command at all when the rules it renders are
// the ones it last wrote (an endpoint change never alters them). Without
// a memory of what it wrote (after a failure) or when the node's
// addresses changed, a partial sync does what a full one does here.
func (p *Proxier) syncNetfilter(ctx context.Context, snap *proxier.Snapshot, pl *syncPlan) error {
	nf := p.netfilter
	if nf == nil {
		return nil
	}
	nodeIP := resolveNodeIP(nf.opts.NodeIP, snap)
	if pl.full || nf.index == nil || nf.index.nodeIP != nodeIP || !slices.Equal(nf.index.nodePortIPs, pl.nodeIPs) {
		return nf.syncAll(ctx, snap, pl, nodeIP)
	}
	return nf.syncChanged(ctx, snap, pl)
}

func (nf *netfilterSync) syncAll(ctx context.Context, snap *proxier.Snapshot, pl *syncPlan, nodeIP netip.Addr) error {
	nf.forget()
	idx := newSetIndex(snap, nodeIP, pl.nodeIPs)
	if _, _, err := nf.sets.Sync(ctx, idx.desired(pl.boundSorted()).Members, true); err != nil {
		return atSeam(SeamIPSet, err)
	}
	if err := nf.applyRules(ctx, idx, true); err != nil {
		return err
	}
	nf.index = idx
	return nil
}

func (nf *netfilterSync) syncChanged(ctx context.Context, snap *proxier.Snapshot, pl *syncPlan) error {
	idx := nf.index
	nf.index = nil // until this step succeeds
	for name := range snap.Changed {
		idx.update(snap, name)
	}
	added, deleted := idx.settle()
	for _, a := range pl.bind {
		added = append(added, ipset.Member{Set: ipset.IPVSIPs, Entry: a.String()})
	}
	for _, a := range pl.unbind {
		deleted = append(deleted, ipset.Member{Set: ipset.IPVSIPs, Entry: a.String()})
	}
	if err := nf.sets.ApplyDelta(ctx, added, deleted); err != nil {
		return atSeam(SeamIPSet, err)
	}
	if err := nf.applyRules(ctx, idx, false); err != nil {
		return err
	}
	nf.index = idx
	return nil
}

// applyRules renders the rules for the index's sets and writes them,
// unless this is a partial sync and they are what was last written. Full
// syncs carry the KUBE-PROXY-CANARY chains the tamper monitor polls
// (rules.Applier.WriteWithCanaries).
func (nf *netfilterSync) applyRules(ctx context.Context, idx *setIndex, full bool) error {
	r := rules.Render(idx.rulesInput(), nf.opts.Rules)
	text := r.Restore(nil)
	if !full && bytes.Equal(text, nf.written) {
		return nil
	}
	nf.written = nil
	tables, err := nf.rules.Read(ctx)
	if err != nil {
		return atSeam(SeamIPTablesSave, err)
	}
	write := nf.rules.Write
	if full {
		write = nf.rules.WriteWithCanaries
	}
	if err := write(ctx, r, tables); err != nil {
		return atSeam(SeamIPTablesRestore, err)
	}
	nf.written, nf.counts = text, r.Counts()
	return nil
}
