package iptables

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime/debug"
	"slices"
	"sync/atomic"

	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
)

// Options configure a Proxier.
type Options struct {
	// Restorer applies and reads this family's tables (required).
	Restorer netfilter.Restorer
	// Render configures the rules (MasqueradeMark is required).
	Render RenderOptions
}

// Proxier is the iptables Backend for one IP family. Sync is a pipeline:
// plan (full or partial; read the kernel when needed) → render → apply (one
// iptables-restore) → account. It is not safe for concurrent Syncs; the
// runner serializes them.
type Proxier struct {
	restorer netfilter.Restorer
	// applier is restorer behind a TableRollback: a restore that fails
	// leaves every table as it was.
	applier  *netfilter.TableRollback
	renderer *Renderer

	// needFull is set at start and after any failed sync.
	needFull bool
	// synced is set once a sync succeeded.
	synced bool
	// unsynced holds the per-service chains renders dropped (Rendering.removed)
	// whose deletion has not been applied yet because their sync failed; the
	// renderer forgets them, so the proxier must remember to delete them.
	unsynced []string
	// services are the service ports of the last successful sync.
	services  map[proxier.ServicePortName]struct{}
	lastLarge bool
	// distrustMemory is set when a full sync based on memory failed: the
	// next one must not rely on memory again (it may be what is wrong).
	distrustMemory bool
	// kernelChanged is set (from the tamper monitor's goroutine) when
	// someone else changed the tables; the next sync consumes it.
	kernelChanged atomic.Bool

	// chains remembers every chain's rules as of the last successful sync,
	// so unchanged chains are left out of the restore input.
	chains chainMemory
	seed   maphash.Seed
	// batchChains is batchMaxChains (smaller in tests).
	batchChains int
}

var _ proxier.Backend = (*Proxier)(nil)

// New returns a Proxier whose first Sync is full.
func New(opts Options) (*Proxier, error) {
	if opts.Restorer == nil {
		return nil, errors.New("iptables proxier: no Restorer")
	}
	if opts.Render.MasqueradeMark == "" {
		return nil, errors.New("iptables proxier: no masquerade mark")
	}
	return &Proxier{restorer: opts.Restorer, applier: netfilter.NewTableRollback(opts.Restorer), renderer: NewRenderer(opts.Render), needFull: true,
		chains: chainMemory{}, seed: maphash.MakeSeed(), batchChains: batchMaxChains}, nil
}

// Sync brings this family's iptables rules to snap with one Restore (several
// only for a large full sync that could not read the nat table, see
// apply_batches.go). On error nothing is remembered and the next sync is full.
func (p *Proxier) Sync(ctx context.Context, snap *proxier.Snapshot) (proxier.SyncResult, error) {
	defer p.releaseMemory()
	pl, err := p.plan(ctx, snap)
	if err != nil {
		p.failed(pl, nil)
		return proxier.SyncResult{}, fmt.Errorf("plan iptables sync: %w", err)
	}
	g, err := p.render(ctx, pl)
	if err != nil {
		p.failed(pl, g)
		return proxier.SyncResult{}, fmt.Errorf("render iptables sync: %w", err)
	}
	all := tableChains(g)
	p.skipUnchanged(pl, g)
	prefixed := p.listPrefixTables(pl, g)
	moveInsertsToOwnBlock(g, prefixed)
	markListPrefix(g, prefixed)
	batched, err := p.writeServiceBatches(ctx, pl, g, prefixed)
	if err != nil {
		p.failed(pl, g)
		return proxier.SyncResult{}, err
	}
	natTablesLast(g)
	data := g.Bytes()
	if err := p.apply(ctx, pl, data); err != nil {
		p.failed(pl, g)
		return proxier.SyncResult{}, err
	}
	p.chains = rememberChains(p.chains, g, all, p.seed, pl.full)
	return p.account(pl, g, batched+len(data)), nil
}

// ForgetKernelState tells the proxier that someone else changed its tables
// (the tamper monitor found a canary or a KUBE-SERVICES jump gone): the next
// sync is full and trusts nothing remembered about the kernel, since a flush
// without -X may have emptied chains that memory says are in place. Safe to
// call from any goroutine.
func (p *Proxier) ForgetKernelState() {
	p.kernelChanged.Store(true)
}

// render produces the restore input: the rendered tables plus, on full syncs,
// missing jump rules and canaries, and deletion of stale per-service chains.
func (p *Proxier) render(ctx context.Context, pl *syncPlan) (*Rendering, error) {
	g := p.renderer.Render(pl.snap)
	if pl.full {
		addJumpRules(g, pl)
		addCanaries(g)
	}
	if pl.lister != nil {
		if err := findStaleChains(ctx, pl.lister, pl.nat, g.active); err != nil {
			return g, err
		}
	}
	addStaleChainDeletions(g, pl, p.unsynced)
	return g, nil
}

// failed makes the next sync full, and keeps it from trusting memory again
// when memory stood in for the kernel in this one.
func (p *Proxier) failed(pl *syncPlan, g *Rendering) {
	p.needFull = true
	if g != nil {
		p.unsynced = append(p.unsynced, g.removed...)
	}
	if pl != nil && pl.source == fromMemory {
		p.distrustMemory = true
	}
}

func (p *Proxier) apply(ctx context.Context, pl *syncPlan, data []byte) error {
	if err := p.applier.RestoreKnown(ctx, data, p.known(pl)); err != nil {
		return fmt.Errorf("apply iptables rules (%d bytes): %w", len(data), err)
	}
	return nil
}

// known tells the rollback snapshot what the kernel holds without asking
// it: the tables a full sync has just saved, or on a partial sync the
// proxier's memory of the chains it wrote.
func (p *Proxier) known(pl *syncPlan) netfilter.Known {
	known := netfilter.Known{Table: func(table string) (string, bool) {
		if t := pl.savedTable(table); t != nil && t.Text != "" {
			return t.Text, true
		}
		return "", false
	}}
	if !pl.full && p.hasMemory() {
		known.Chain = p.rememberedChain
	}
	return known
}

// rememberedChain is a top-level chain's rules as the last successful sync
// wrote them, so a partial sync's rollback snapshot needs no iptables
// command. Only partial syncs may use it: a full sync's planning records
// save hashes in the same memory before it applies.
func (p *Proxier) rememberedChain(table, chain string) ([]byte, bool) {
	if netfilter.IsServiceChainName(chain) {
		return nil, false
	}
	s, ok := p.chains.get(table, chain)
	return s.text, ok
}

// natTablesLast writes the nat blocks after filter and mangle: TableRollback
// snapshots every table but the last, and nat is the one that grows with
// the cluster (reading it at 10k services takes minutes).
func natTablesLast(g *Rendering) {
	slices.SortStableFunc(g.tables, func(a, b *tableText) int {
		return cmp.Compare(boolRank(a.name == "nat"), boolRank(b.name == "nat"))
	})
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// rememberServices records the service ports now in the kernel: all of them
// after a full sync, only the changed ones' presence after a partial one.
func (p *Proxier) rememberServices(pl *syncPlan) {
	if pl.full || p.services == nil {
		p.services = make(map[proxier.ServicePortName]struct{}, len(pl.snap.Services))
		for name := range pl.snap.Services {
			p.services[name] = struct{}{}
		}
		return
	}
	for name := range pl.snap.Changed {
		if _, ok := pl.snap.Services[name]; ok {
			p.services[name] = struct{}{}
		} else {
			delete(p.services, name)
		}
	}
}

// releaseMemory drops the tens of megabytes of buffers a large full sync
// grew and hands the memory back to the kernel at once: full syncs are rare
// (start, hourly, after failures), and without this the process would keep
// its peak resident set until the Go scavenger slowly returns it.
func (p *Proxier) releaseMemory() {
	if p.renderer.releaseLargeBuffers() {
		debug.FreeOSMemory()
	}
}

// account remembers what is now in the kernel and reports the sync.
func (p *Proxier) account(pl *syncPlan, g *Rendering, restoreBytes int) proxier.SyncResult {
	p.synced = true
	p.unsynced = nil
	p.rememberServices(pl)
	p.needFull = false
	p.distrustMemory = false
	p.lastLarge = pl.large
	return proxier.SyncResult{Full: pl.full, RestoreBytes: restoreBytes, Rules: g.RuleCounts()}
}
