package iptables

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"

	"github.com/kproxy/kproxy/proxier"
)

// Options configure a Proxier.
type Options struct {
	// Restorer applies and reads this family's tables (required).
	Restorer Restorer
	// Render configures the rules (MasqueradeMark is required).
	Render RenderOptions
}

// Proxier is the iptables Backend for one IP family. Sync is a pipeline:
// plan (full or partial; read the kernel when needed) → render → apply (one
// iptables-restore) → account. It is not safe for concurrent Syncs; the
// runner serializes them.
type Proxier struct {
	restorer Restorer
	renderer *Renderer

	// needFull is set at start and after any failed sync.
	needFull bool
	// written holds the per-service nat chains present after the last
	// successful sync, so a partial sync can delete those no longer needed
	// without reading the table.
	written map[string]struct{}
	// services are the service ports of the last successful sync.
	services  map[proxier.ServicePortName]struct{}
	lastLarge bool

	// chains remembers every chain's rules as of the last successful sync,
	// so unchanged chains are left out of the restore input.
	chains chainMemory
	seed   maphash.Seed
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
	return &Proxier{restorer: opts.Restorer, renderer: NewRenderer(opts.Render), needFull: true,
		chains: chainMemory{}, seed: maphash.MakeSeed()}, nil
}

// Sync brings this family's iptables rules to snap with exactly one Restore.
// On error nothing is remembered and the next sync is full.
func (p *Proxier) Sync(ctx context.Context, snap *proxier.Snapshot) (proxier.SyncResult, error) {
	pl, err := p.plan(ctx, snap)
	if err != nil {
		p.needFull = true
		return proxier.SyncResult{}, fmt.Errorf("plan iptables sync: %w", err)
	}
	g := p.render(pl)
	all := tableChains(g)
	p.skipUnchanged(pl, g)
	prefixed := p.listPrefixTables(pl, g)
	moveInsertsToOwnBlock(g, prefixed)
	data := withListPrefix(g.Bytes(), prefixed)
	if err := p.apply(ctx, data); err != nil {
		p.needFull = true
		return proxier.SyncResult{}, err
	}
	p.chains = rememberChains(p.chains, g, all, p.seed, pl.full)
	return p.account(pl, g, len(data)), nil
}

// render produces the restore input: the rendered tables plus, on full syncs,
// missing jump rules and canaries, and deletion of stale per-service chains.
func (p *Proxier) render(pl *syncPlan) *Rendering {
	g := p.renderer.Render(pl.snap)
	if pl.full {
		addJumpRules(g, pl)
		addCanaries(g)
	}
	addStaleChainDeletions(g, pl, p.written)
	return g
}

func (p *Proxier) apply(ctx context.Context, data []byte) error {
	if err := p.restorer.Restore(ctx, data); err != nil {
		return fmt.Errorf("apply iptables rules (%d bytes): %w", len(data), err)
	}
	return nil
}

// account remembers what is now in the kernel and reports the sync.
func (p *Proxier) account(pl *syncPlan, g *Rendering, restoreBytes int) proxier.SyncResult {
	p.written = g.active
	p.services = make(map[proxier.ServicePortName]struct{}, len(pl.snap.Services))
	for name := range pl.snap.Services {
		p.services[name] = struct{}{}
	}
	p.needFull = false
	p.lastLarge = pl.large
	return proxier.SyncResult{Full: pl.full, RestoreBytes: restoreBytes, Rules: g.RuleCounts()}
}
