package nftables

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/knftables"

	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/metrics"
	"github.com/kproxy/kproxy/proxier/netfilter"
)

// Options configure a Proxier.
type Options struct {
	// NFT runs transactions on this family's "kube-proxy" table (required):
	// proxier/netfilter/nft.Open (which bounds every nft command) or a
	// knftables.Fake.
	NFT knftables.Interface
	// Family is the IP family of the table (IPv4 when empty).
	Family v1.IPFamily
	// MasqueradeMark is the mark, e.g. "0x00004000" (required).
	MasqueradeMark string
	// MasqueradeAll masquerades all ClusterIP traffic.
	MasqueradeAll bool
	// LocalDetector tells pod traffic from other traffic; the no-op
	// detector means no off-cluster masquerade and no pod short-circuit.
	LocalDetector netfilter.LocalDetector
	// NodePortsAll serves NodePorts on every local address (nodePortAddresses
	// matching everything); otherwise on NodePortIPs only (the node's
	// addresses that nodePortAddresses selects; loopback ones are ignored).
	NodePortsAll bool
	NodePortIPs  []netip.Addr
	// NodeIP is the node's primary IP of this family (LB source ranges that
	// hold it also allow the LB IPs as sources).
	NodeIP netip.Addr
	// ServiceCIDRs, when set, get traffic to their unallocated addresses dropped.
	ServiceCIDRs []netip.Prefix
	// Metrics, when set, receives the nftables failure counters.
	Metrics *metrics.Metrics
	// Now is the clock for stale chain deletion (time.Now when nil).
	Now func() time.Time
}

// Proxier is the nftables Backend for one IP family. Each Sync is one
// transaction: a full sync rewrites the whole table, a partial one only the
// changed service ports' chains and the element deltas, computed against
// the mirror of what the last successful transaction left. Not safe for
// concurrent Syncs; the runner serializes them.
type Proxier struct {
	nft     knftables.Interface
	family  v1.IPFamily
	table   tableConfig
	ctx     renderContext
	metrics *metrics.Metrics
	now     func() time.Time
	mirror  *mirror
	// synced is false until the first successful full sync; baseRecreated
	// once the base chains were re-created by this process.
	synced        bool
	baseRecreated bool
}

var _ proxier.Backend = (*Proxier)(nil)

// New returns a Proxier. Its first Sync is full whatever the snapshot says.
func New(opts Options) (*Proxier, error) {
	if opts.NFT == nil {
		return nil, errors.New("nftables proxier: no knftables.Interface")
	}
	if opts.MasqueradeMark == "" {
		return nil, errors.New("nftables proxier: no masquerade mark")
	}
	if opts.Family == "" {
		opts.Family = v1.IPv4Protocol
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	fam := familyOf(opts.Family)
	ifLocal, ifNotLocal, _ := opts.LocalDetector.NFT()
	p := &Proxier{nft: opts.NFT, family: opts.Family, metrics: opts.Metrics, now: opts.Now, mirror: newMirror(),
		table: tableConfig{fam: fam, masqueradeAll: opts.MasqueradeAll, masqMark: opts.MasqueradeMark,
			ifNotLocal: ifNotLocal, nodePortAll: opts.NodePortsAll, nodePortIPs: slices.Clone(opts.NodePortIPs),
			serviceCIDRs: familyPrefixes(opts.ServiceCIDRs, opts.Family)},
	}
	p.ctx = renderContext{fam: fam, masqRule: p.table.masqRule(), ifLocal: ifLocal, nodeIP: opts.NodeIP}
	return p, nil
}

func familyPrefixes(ps []netip.Prefix, f v1.IPFamily) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if p.Addr().Is6() == (f == v1.IPv6Protocol) {
			out = append(out, p.Masked())
		}
	}
	return out
}

// Sync brings the table to snap. Stale chains due for deletion go first in
// their own transaction (if that fails, the sync becomes full). On error
// the kernel and the mirror are as before (nft transactions are atomic).
func (p *Proxier) Sync(ctx context.Context, snap *proxier.Snapshot) (proxier.SyncResult, error) {
	full := snap.Full || !p.synced
	if err := p.deleteStaleChains(ctx); err != nil {
		full = true
	}
	var tx *knftables.Transaction
	var commit func()
	if full {
		tx, commit = p.planFullSync(ctx, snap)
	} else {
		tx, commit = p.planPartialSync(snap)
	}
	size := transactionBytes(tx)
	if tx.NumOperations() > 0 {
		if err := p.nft.Run(ctx, tx); err != nil {
			p.countFailure(p.metricsSyncFailures())
			return proxier.SyncResult{}, fmt.Errorf("nftables %s sync transaction: %w", syncKind(full), err)
		}
	}
	commit()
	return proxier.SyncResult{Full: full, RestoreBytes: size}, nil
}

func syncKind(full bool) string {
	if full {
		return "full"
	}
	return "partial"
}

// transactionBytes is the size of the nft -f input tx stands for.
func transactionBytes(tx *knftables.Transaction) int { return len(tx.String()) }

func (p *Proxier) planFullSync(ctx context.Context, snap *proxier.Snapshot) (*knftables.Transaction, func()) {
	now := p.now()
	next, ch := planFull(&p.ctx, snap, p.mirror, p.listKernelObjects(ctx), now)
	tx := p.nft.NewTransaction()
	writeSkeleton(tx, &p.table, !p.baseRecreated)
	flushContainers(tx)
	writeChanges(tx, p.table.fam, &ch)
	return tx, func() {
		p.mirror, p.synced, p.baseRecreated = next, true, true
	}
}

func (p *Proxier) planPartialSync(snap *proxier.Snapshot) (*knftables.Transaction, func()) {
	plan := planPartial(&p.ctx, p.mirror, snap)
	tx := p.nft.NewTransaction()
	writeChanges(tx, p.table.fam, &plan.changes)
	return tx, func() { plan.commit(p.mirror, p.now()) }
}

// listKernelObjects lists the table's chains and sets once per full sync
// (restart over an existing table, recovery); a missing table holds
// nothing, a failed listing falls back to what the mirror knows.
func (p *Proxier) listKernelObjects(ctx context.Context) kernelObjects {
	chains, err := p.nft.List(ctx, "chains")
	if err != nil && !knftables.IsNotFound(err) {
		return p.mirror.knownObjects()
	}
	sets, err := p.nft.List(ctx, "sets")
	if err != nil && !knftables.IsNotFound(err) {
		return p.mirror.knownObjects()
	}
	return kernelObjects{chains: chains, sets: sets}
}

// deleteStaleChains deletes the stale chains flushed at least a second ago.
// They leave the mirror either way: a failure makes the sync full, whose
// listing finds whatever is still there.
func (p *Proxier) deleteStaleChains(ctx context.Context) error {
	cutoff := p.now().Add(-time.Second)
	var due []string
	for name, t := range p.mirror.stale {
		if !t.After(cutoff) {
			due = append(due, name)
		}
	}
	if len(due) == 0 {
		return nil
	}
	slices.Sort(due)
	tx := p.nft.NewTransaction()
	for _, name := range due {
		tx.Delete(&knftables.Chain{Name: name})
		delete(p.mirror.stale, name)
	}
	if err := p.nft.Run(ctx, tx); err != nil {
		p.countFailure(p.metricsCleanupFailures())
		return fmt.Errorf("delete stale nftables chains: %w", err)
	}
	return nil
}
