package iptables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime/debug"

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

// Proxier is the iptables Backend for one IP family. Sync is a one-way
// pipeline of steps with their own types: decide the sync kind → read the
// kernel (kernelState) → render (Rendering, pure) → diff (changes) → lay
// out (restorePlan) → apply, whose success makes the changes the memory.
// It is not safe for concurrent Syncs; the runner serializes them.
type Proxier struct {
	renderer *Renderer
	// kernel is the read step with its memory of the last successful sync.
	kernel kernelReader
	// applier is the Restorer behind a TableRollback: a restore that fails
	// leaves every table as it was.
	applier *netfilter.TableRollback
	// out is the restore input buffer, reused across syncs.
	out bytes.Buffer
	// batchChains is batchMaxChains (smaller in tests).
	batchChains int
}

var _ proxier.Backend = (*Proxier)(nil)

// New returns a Proxier. Its first Sync must be full, as proxier.Runner's
// is; a partial one is widened.
func New(opts Options) (*Proxier, error) {
	if opts.Restorer == nil {
		return nil, errors.New("iptables proxier: no Restorer")
	}
	if opts.Render.MasqueradeMark == "" {
		return nil, errors.New("iptables proxier: no masquerade mark")
	}
	return &Proxier{renderer: NewRenderer(opts.Render), applier: netfilter.NewTableRollback(opts.Restorer),
		kernel: kernelReader{restorer: opts.Restorer, seed: maphash.MakeSeed()}, batchChains: batchMaxChains}, nil
}

// Sync brings this family's iptables rules to snap with one Restore (several
// only for a large full sync that could not read the nat table, see
// restore_plan.go). On error nothing is remembered but what the kernel
// still holds; the runner makes the next sync full. snap.Changed must list
// every service port changed since the last successful Sync.
func (p *Proxier) Sync(ctx context.Context, snap *proxier.Snapshot) (proxier.SyncResult, error) {
	defer p.releaseMemory()
	kind := p.decide(snap)
	ks, err := p.kernel.read(ctx, readRequest{full: kind.full, snap: kind.snap, endpoints: kind.endpoints})
	if err != nil {
		return proxier.SyncResult{}, fmt.Errorf("read iptables state: %w", err)
	}
	g := p.renderer.Render(kind.snap)
	if err := p.kernel.readStale(ctx, ks, g); err != nil {
		p.kernel.failed(g, ks)
		return proxier.SyncResult{}, fmt.Errorf("read iptables state: %w", err)
	}
	ch := diff(ks, g, p.diffOptions(kind.snap))
	plan := planRestore(ch, ks, layoutOptions{services: kind.snap.Len(), batchChains: p.batchChains})
	written, err := p.apply(ctx, plan, ks.known())
	if err != nil {
		p.kernel.failed(g, ks)
		return proxier.SyncResult{}, err
	}
	p.kernel.commit(ch, kind.snap, kind.large)
	return proxier.SyncResult{Full: kind.full, RestoreBytes: written, Rules: g.RuleCounts()}, nil
}

// ForgetKernelState tells the proxier that someone else changed its tables
// (the tamper monitor found a canary or a KUBE-SERVICES jump gone): the next
// sync trusts nothing remembered about the kernel, since a flush without -X
// may have emptied chains that memory says are in place, and is therefore
// full even if its snapshot is not (the monitor also asks the runner for a
// full sync; this covers a sync that took its snapshot in between). Safe to
// call from any goroutine.
func (p *Proxier) ForgetKernelState() {
	p.kernel.forget.Store(true)
}

// syncKind is the first step: how much this sync renders and reads.
type syncKind struct {
	// snap is the caller's snapshot, copied with Full set when the sync
	// was widened to a full one.
	snap      *proxier.Snapshot
	full      bool
	endpoints int
	// large is upstream's large-cluster mode, decided from endpoints.
	large bool
}

// decide makes a sync full when the snapshot is, and widens a partial one
// when the memory cannot serve as its kernel view: none (no sync
// succeeded yet), not trusted, or rendered in the other large-cluster mode
// (every endpoint rule's comment changes).
func (p *Proxier) decide(snap *proxier.Snapshot) syncKind {
	p.kernel.startSync()
	k := syncKind{snap: snap, endpoints: p.renderer.state.totalEndpoints(snap)}
	k.large = k.endpoints > p.renderer.opts.LargeClusterEndpointsThreshold
	k.full = snap.Full || !p.kernel.canDiffPartial(k.large)
	if k.full && !snap.Full {
		s := *snap
		s.Full = true
		k.snap = &s
	}
	return k
}

func (p *Proxier) diffOptions(snap *proxier.Snapshot) diffOptions {
	family := p.renderer.opts.Family
	if family == "" {
		family = snap.Family
	}
	return diffOptions{family: family, seed: p.kernel.seed, savedForm: p.kernel.memory.savedForm}
}

// apply restores the plan's batches, then its blocks, and returns the bytes
// written. The rollback snapshot learns from ks what the kernel holds.
func (p *Proxier) apply(ctx context.Context, plan *restorePlan, known netfilter.Known) (int, error) {
	written := 0
	for _, b := range plan.batches {
		n, err := p.restore(ctx, []*tableText{{name: "nat", chains: b}}, known)
		if err != nil {
			return written, err
		}
		written += n
	}
	n, err := p.restore(ctx, plan.blocks, known)
	return written + n, err
}

func (p *Proxier) restore(ctx context.Context, blocks []*tableText, known netfilter.Known) (int, error) {
	data := writeBlocks(&p.out, blocks)
	if err := p.applier.RestoreKnown(ctx, data, known); err != nil {
		return 0, fmt.Errorf("apply iptables rules (%d bytes): %w", len(data), err)
	}
	return len(data), nil
}

// releaseMemory drops the tens of megabytes of buffers a large full sync
// grew and hands the memory back to the kernel at once: full syncs are rare
// (start, hourly, after failures), and without this the process would keep
// its peak resident set until the Go scavenger slowly returns it.
func (p *Proxier) releaseMemory() {
	released := p.renderer.releaseLargeBuffers()
	if p.out.Cap() > keepBufferBytes {
		p.out, released = bytes.Buffer{}, true
	}
	if released {
		debug.FreeOSMemory()
	}
}
