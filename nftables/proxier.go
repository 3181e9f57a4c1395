package nftables

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/knftables"

	"github.com/kproxy/kproxy/nftables/nftnl"
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
	// ServiceCIDRs, when set, get traffic to their unallocated addresses
	// dropped (SetServiceCIDRs replaces them later).
	ServiceCIDRs []netip.Prefix
	// Metrics, when set, receives the nftables failure counters.
	Metrics *metrics.Metrics
	// Now is the clock for stale chain deletion (time.Now when nil).
	Now func() time.Time
	// Netlink, when set, writes partial syncs, stale chain deletions and
	// the whole of a chunked full sync (fixed part, chunks, elements) as
	// netlink batches instead of nft -f runs: at 10000 services nft spends
	// ~160 ms loading its cache for a one-endpoint change, 0.2-0.4 s and
	// ~30 MB for a full sync's fixed part, and parses every chunk. A full
	// sync small enough for one transaction goes through NFT. After
	// netlinkGiveUp failures in a row it is dropped.
	Netlink BatchRunner
	// FullSyncChunkChains splits a full sync that writes more service
	// chains than this into several transactions (DefaultFullSyncChunkChains
	// when 0; never when negative). See Sync.
	FullSyncChunkChains int
}

// DefaultFullSyncChunkChains is the number of service chains a full sync
// writes per transaction. The kernel walks every set of the table for each
// anonymous set a transaction creates and every entry of the transaction
// when binding it, so one transaction over 10000 services costs far more
// than ten over 1000 each (measured with nft 1.0.6 on Linux 6.18: 17 s
// against 10 s from an empty table, 45 s against 17 s over an existing
// one; the nft child's peak RSS 257 MB against 50 MB).
const DefaultFullSyncChunkChains = 1000

// Proxier is the nftables Backend for one IP family. A full sync rewrites
// the whole table (in several transactions when it is large, see Sync), a
// partial one, in one transaction, only the changed service ports' chains
// and the element deltas, computed against the mirror of what the last
// successful transaction left. Not safe for concurrent Syncs; the runner
// serializes them.
type Proxier struct {
	nft     knftables.Interface
	family  v1.IPFamily
	table   tableConfig
	ctx     renderContext
	metrics *metrics.Metrics
	now     func() time.Time
	mirror  *mirror
	chunk   int
	// netlink writes what Options.Netlink says, when set;
	// netlinkFailures counts its failures in a row.
	netlink         BatchRunner
	netlinkFailures int
	// synced is false until the first successful full sync; baseRecreated
	// once the base chains were re-created by this process.
	synced        bool
	baseRecreated bool

	// cidrMu guards serviceCIDRs, set from the ServiceCIDR watch while a
	// sync may run; a full sync copies them into table.
	cidrMu       sync.Mutex
	serviceCIDRs []netip.Prefix
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
	if opts.FullSyncChunkChains == 0 {
		opts.FullSyncChunkChains = DefaultFullSyncChunkChains
	}
	fam := familyOf(opts.Family)
	p := &Proxier{nft: opts.NFT, family: opts.Family, metrics: opts.Metrics, now: opts.Now, mirror: newMirror(),
		chunk: opts.FullSyncChunkChains, netlink: opts.Netlink,
		table: tableConfig{fam: fam, masqueradeAll: opts.MasqueradeAll, masqMark: opts.MasqueradeMark,
			ifNotLocal: notLocalMatch(&opts.LocalDetector), nodePortAll: opts.NodePortsAll, nodePortIPs: slices.Clone(opts.NodePortIPs),
			serviceCIDRs: familyPrefixes(opts.ServiceCIDRs, opts.Family)},
	}
	p.serviceCIDRs = p.table.serviceCIDRs
	p.ctx = renderContext{fam: fam, masq: p.table.masq(), ifLocal: localMatch(&opts.LocalDetector), nodeIP: opts.NodeIP}
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
// their own transaction (if that fails, the sync becomes full). A partial
// sync is one transaction, plus one that deletes the old rules of the
// chains it swaps (swap.go). So is a full sync of up to
// FullSyncChunkChains service chains; a larger one is several, each
// atomic (the last deleting swapped chains' old rules), in an order that
// never leaves an element pointing at a missing or half-written chain:
// the fixed part of the table first, then the service ports' chains and
// affinity sets a chunk at a time (each chain flushed and refilled in one
// transaction), then every set and map flushed and refilled with the stale
// chains flushed, in the last. On error the mirror is as before and the
// runner retries with a full sync; the transactions that did apply only
// brought chains up to date ahead of the maps.
func (p *Proxier) Sync(ctx context.Context, snap *proxier.Snapshot) (proxier.SyncResult, error) {
	full := snap.Full || !p.synced
	if err := p.deleteStaleChains(ctx); err != nil {
		full = true
	}
	var txs []txStep
	var commit func()
	if full {
		txs, commit = p.planFullSync(ctx, snap)
	} else {
		txs, commit = p.planPartialSync(ctx, snap)
	}
	size := 0
	for i, step := range txs {
		n, err := step.run(ctx)
		size += n
		if err != nil {
			p.countFailure(p.metricsSyncFailures())
			return proxier.SyncResult{}, fmt.Errorf("nftables %s sync transaction%s: %w", syncKind(full), ordinal(i, len(txs)), err)
		}
		if step.applied != nil {
			step.applied()
		}
	}
	commit()
	return proxier.SyncResult{Full: full, RestoreBytes: size}, nil
}

// txStep runs one transaction of a sync when it is due (built then, so a
// large table's text is never held all at once), returning its size as
// nft text, and notes what it changed once the kernel took it.
type txStep struct {
	run     func(ctx context.Context) (int, error)
	applied func()
}

// nftStep is a transaction run by nft -f; an empty one is skipped.
func (p *Proxier) nftStep(build func() (*knftables.Transaction, error)) txStep {
	return txStep{run: func(ctx context.Context) (int, error) {
		tx, err := build()
		if err != nil {
			return 0, err
		}
		if tx.NumOperations() == 0 {
			return 0, nil
		}
		return transactionBytes(tx), p.nft.Run(ctx, tx)
	}}
}

// changesStep writes ch in a transaction of its own: over netlink when the
// Proxier has a connection, else with nft -f.
func (p *Proxier) changesStep(ch *changes) txStep {
	if p.netlink == nil {
		return p.changesStepNFT(ch)
	}
	return txStep{run: func(ctx context.Context) (int, error) {
		b, err := p.changesBatch(ch)
		if err != nil {
			return 0, err
		}
		return p.runBatch(ctx, b)
	}}
}

// changesStepNFT writes ch in a transaction of its own with nft -f.
func (p *Proxier) changesStepNFT(ch *changes) txStep {
	return p.nftStep(func() (*knftables.Transaction, error) {
		tx := p.nft.NewTransaction()
		return tx, p.appendChanges(tx, ch)
	})
}

// changesBatch is ch as a batch on this family's table.
func (p *Proxier) changesBatch(ch *changes) (*nftnl.Batch, error) {
	w := &batchWriter{b: nftnl.NewBatch(p.table.fam.nl, TableName)}
	writeChanges(w, ch)
	return w.b, w.err
}

// appendChanges adds ch to tx, after whatever tx already holds.
func (p *Proxier) appendChanges(tx *knftables.Transaction, ch *changes) error {
	b, err := p.changesBatch(ch)
	if err != nil {
		return err
	}
	b.AppendTo(tx)
	return nil
}

// ordinal names transaction i of n for an error, when there are several.
func ordinal(i, n int) string {
	if n == 1 {
		return ""
	}
	return fmt.Sprintf(" %d of %d", i+1, n)
}

func syncKind(full bool) string {
	if full {
		return "full"
	}
	return "partial"
}

// transactionBytes is the size of the nft -f input tx stands for.
func transactionBytes(tx *knftables.Transaction) int { return len(tx.String()) }

// SetServiceCIDRs replaces the cluster's service CIDRs (both families; this
// Proxier keeps its own). Like upstream, they are written by the next full
// sync; it reports whether this family's changed, so the caller can ask
// for one.
func (p *Proxier) SetServiceCIDRs(cidrs []netip.Prefix) bool {
	mine := familyPrefixes(cidrs, p.family)
	p.cidrMu.Lock()
	defer p.cidrMu.Unlock()
	if slices.Equal(mine, p.serviceCIDRs) {
		return false
	}
	p.serviceCIDRs = mine
	return true
}

// planFullSync returns the full sync's transactions, built one at a time
// as they run (a large table's text is never held all at once). One that
// fits a transaction goes through nft -f whole; a chunked one, or one with
// more elements than a chunk has chains, writes its fixed part, chunks and
// elements over netlink when the Proxier has a connection (nft would load
// its cache of the table and parse every chunk's text each time).
func (p *Proxier) planFullSync(ctx context.Context, snap *proxier.Snapshot) ([]txStep, func()) {
	p.cidrMu.Lock()
	p.table.serviceCIDRs = p.serviceCIDRs
	p.cidrMu.Unlock()
	kernel := p.listKernelObjects(ctx)
	plan := planFull(&p.ctx, snap, p.mirror, kernel, p.now(), p.chunk)
	plan.tail.flushElements = true
	after := p.planFullSwaps(ctx, plan, kernel)
	commit := func() { p.mirror, p.synced, p.baseRecreated = plan.next, true, true }
	// A big table's elements go over netlink too, even when no chain
	// needs writing (a restart over a table that is already right).
	bigElements := p.netlink != nil && p.chunk > 0 && len(plan.tail.elemAdd) > p.chunk
	if len(plan.chunks) == 1 && !bigElements {
		steps := []txStep{p.nftStep(func() (*knftables.Transaction, error) {
			tx := p.nft.NewTransaction()
			p.skeletonBatch().AppendTo(tx)
			ch := plan.single()
			return tx, p.appendChanges(tx, &ch)
		})}
		if after != nil {
			// The swapped chains' old rules, then the sets they name, go
			// in a transaction of their own.
			after.deleteSets, plan.tail.deleteSets = plan.tail.deleteSets, nil
			steps = append(steps, p.changesStep(after))
		}
		return steps, commit
	}
	if after != nil {
		plan.tail.deleteRules = after.deleteRules
	}
	skeleton := p.skeletonStep()
	// Re-created base chains stay re-created whatever follows.
	skeleton.applied = func() { p.baseRecreated = true }
	steps := []txStep{skeleton}
	for i := range plan.chunks {
		steps = append(steps, p.changesStep(&plan.chunks[i]))
	}
	return append(steps, p.changesStep(&plan.tail)), commit
}

// skeletonBatch is the fixed part of the table (writeSkeleton) as a batch.
func (p *Proxier) skeletonBatch() *nftnl.Batch {
	b := nftnl.NewBatch(p.table.fam.nl, TableName)
	writeSkeleton(b, &p.table, !p.baseRecreated)
	return b
}

// skeletonStep writes the fixed part of the table in a transaction of its
// own: over netlink when the Proxier has a connection (so that a large
// table's full sync runs no nft, whose cache of the table costs ~30 MB and
// 0.2-0.4 s at 10000 services), else with nft -f.
func (p *Proxier) skeletonStep() txStep {
	if p.netlink == nil {
		return p.nftStep(func() (*knftables.Transaction, error) {
			tx := p.nft.NewTransaction()
			p.skeletonBatch().AppendTo(tx)
			return tx, nil
		})
	}
	return txStep{run: func(ctx context.Context) (int, error) {
		return p.runBatch(ctx, p.skeletonBatch())
	}}
}

// planPartialSync is one transaction, or two when chains are swapped
// (swap.go): the second deletes their old rules.
func (p *Proxier) planPartialSync(ctx context.Context, snap *proxier.Snapshot) ([]txStep, func()) {
	plan := planPartial(&p.ctx, p.mirror, snap)
	after := p.planSwaps(ctx, plan)
	steps := []txStep{p.changesStep(&plan.changes)}
	if after != nil {
		steps = append(steps, p.changesStep(after))
	}
	return steps, func() { plan.commit(p.mirror, p.now()) }
}

// listKernelObjects lists the table's chains and sets once per full sync
// (restart over an existing table, recovery): over netlink when the
// connection can (names only), else with nft. A missing table holds
// nothing; a failed listing falls back to what the mirror knows.
func (p *Proxier) listKernelObjects(ctx context.Context) kernelObjects {
	if l, ok := p.netlink.(NameLister); ok {
		names, err := l.ListNames(ctx, p.table.fam.nl, TableName)
		if err == nil {
			return kernelObjects{chains: names.Chains, sets: names.Sets, digests: p.chainDigests(ctx)}
		}
		klog.FromContext(ctx).Error(err, "Listing the nftables table over netlink failed, listing with nft")
	}
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

// chainDigests are the kernel's chain digests when the netlink connection
// gives them, else nil (every chain is rewritten).
func (p *Proxier) chainDigests(ctx context.Context) map[string]nftnl.Digest {
	d, ok := p.netlink.(ChainDigester)
	if !ok {
		return nil
	}
	digests, err := d.ChainDigests(ctx, p.table.fam.nl, TableName)
	if err != nil {
		klog.FromContext(ctx).Error(err, "Reading the nftables chains over netlink failed, rewriting every chain")
		return nil
	}
	return digests
}

// RetireStaleChains waits until the chains earlier syncs flushed are due
// (a second after the flush) and deletes them: for a run with no later
// sync (--once). Without stale chains it returns at once.
func (p *Proxier) RetireStaleChains(ctx context.Context) error {
	var last time.Time
	for _, t := range p.mirror.stale {
		if t.After(last) {
			last = t
		}
	}
	if last.IsZero() {
		return nil
	}
	if wait := last.Add(time.Second).Sub(p.now()); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting to delete stale nftables chains: %w", ctx.Err())
		case <-t.C:
		}
	}
	return p.deleteStaleChains(ctx)
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
	for _, name := range due {
		delete(p.mirror.stale, name)
	}
	if _, err := p.changesStep(&changes{deleteChain: due}).run(ctx); err != nil {
		p.countFailure(p.metricsCleanupFailures())
		return fmt.Errorf("delete stale nftables chains: %w", err)
	}
	return nil
}
