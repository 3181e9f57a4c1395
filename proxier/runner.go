package proxier

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

// SyncObserver is told about queued changes and finished syncs: health
// reporting, metrics, health-check node ports and conntrack cleanup hang off
// it, so the runner stays a scheduler.
type SyncObserver interface {
	Queued(family v1.IPFamily)
	Synced(ctx context.Context, snap *Snapshot, res SyncResult, elapsed time.Duration, err error)
}

// SnapshotSource is what a Runner syncs from: the Tracker (only a Tracker
// makes snapshots with service ports; tests use a proxiertest.World's), or
// in tests a source of empty snapshots.
type SnapshotSource interface {
	Family() v1.IPFamily
	// Initialized reports whether the sources have listed everything once.
	Initialized() bool
	// Snapshot returns the state with the changes since the last successful sync.
	Snapshot() *Snapshot
	// Requeue puts a failed sync's changes back for the next snapshot.
	Requeue(snap *Snapshot)
}

// RunnerOptions configures a Runner.
type RunnerOptions struct {
	Tracker SnapshotSource
	Backend Backend
	// MinInterval is the least time between two syncs (minSyncPeriod).
	MinInterval time.Duration
	// RetryInterval is how long after a failed sync the next one runs (syncPeriod).
	RetryInterval time.Duration
	// FullSyncInterval forces a full sync this long after the last one (1 h upstream).
	FullSyncInterval time.Duration
	Observers        []SyncObserver
	Logger           klog.Logger
	Mode             string
	Now              func() time.Time
}

// Runner is a bounded-frequency sync loop for one IP family: triggers
// coalesce, syncs are at least MinInterval apart, a failure is retried after
// RetryInterval with a full sync, and nothing runs before the tracker is initialized.
// It is the one owner of "the next sync must be full": the first sync, every
// sync after a failed one, after ForceFull and after FullSyncInterval get a
// full snapshot, and backends rely on that rather than tracking it again.
type Runner struct {
	opts    RunnerOptions
	trigger chan struct{}

	mu        sync.Mutex
	forceFull bool
	// forceRequests counts ForceFull calls, so that a sync which started
	// before a request does not clear it (the request would be lost).
	forceRequests uint64
	lastFull      time.Time
}

// NewRunner validates the options and returns a runner.
func NewRunner(opts RunnerOptions) (*Runner, error) {
	if opts.Tracker == nil || opts.Backend == nil {
		return nil, fmt.Errorf("runner needs a tracker and a backend")
	}
	if opts.RetryInterval <= 0 {
		return nil, fmt.Errorf("retry interval must be positive, got %v", opts.RetryInterval)
	}
	if opts.FullSyncInterval < opts.MinInterval {
		return nil, fmt.Errorf("full sync interval %v is shorter than min interval %v", opts.FullSyncInterval, opts.MinInterval)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Runner{opts: opts, trigger: make(chan struct{}, 1), forceFull: true}, nil
}

// Trigger asks for a sync soon; calls coalesce while one is pending.
func (r *Runner) Trigger() {
	for _, o := range r.opts.Observers {
		o.Queued(r.opts.Tracker.Family())
	}
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

// ForceFull makes the next sync rewrite everything (e.g. the canary chain vanished).
func (r *Runner) ForceFull() {
	r.mu.Lock()
	r.forceFull = true
	r.forceRequests++
	r.mu.Unlock()
	r.Trigger()
}

// Run syncs until ctx is done.
func (r *Runner) Run(ctx context.Context) {
	timer := time.NewTimer(r.opts.FullSyncInterval)
	defer timer.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.trigger:
		case <-timer.C:
		}
		if !r.opts.Tracker.Initialized() {
			continue
		}
		if !waitMinInterval(ctx, last, r.opts.MinInterval, r.opts.Now) {
			return
		}
		err := r.SyncOnce(ctx)
		last = r.opts.Now()
		next := r.opts.FullSyncInterval
		if err != nil {
			next = min(r.opts.RetryInterval, r.opts.FullSyncInterval)
		}
		resetTimer(timer, next)
	}
}

func waitMinInterval(ctx context.Context, last time.Time, minInterval time.Duration, now func() time.Time) bool {
	if last.IsZero() {
		return true
	}
	wait := minInterval - now().Sub(last)
	if wait <= 0 {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func resetTimer(t *time.Timer, d time.Duration) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	t.Reset(d)
}

// SyncOnce takes a snapshot and hands it to the backend once. On failure the
// snapshot's changes are requeued and the next sync is full.
func (r *Runner) SyncOnce(ctx context.Context) error {
	snap := r.opts.Tracker.Snapshot()
	r.mu.Lock()
	snap.Full = r.forceFull || r.opts.Now().Sub(r.lastFull) >= r.opts.FullSyncInterval
	requests := r.forceRequests
	r.mu.Unlock()

	start := r.opts.Now()
	res, err := r.opts.Backend.Sync(ctx, snap)
	elapsed := r.opts.Now().Sub(start)
	r.account(snap, res, err, start, requests)
	for _, o := range r.opts.Observers {
		o.Synced(ctx, snap, res, elapsed, err)
	}
	if err != nil {
		r.opts.Tracker.Requeue(snap)
		r.opts.Logger.Error(err, "Sync failed; previous rules stay in place, retrying with a full sync",
			"mode", r.opts.Mode, "ipFamily", snap.Family, "retryIn", r.opts.RetryInterval)
		return fmt.Errorf("sync %s rules: %w", snap.Family, err)
	}
	if l := r.opts.Logger.V(2); l.Enabled() {
		l.Info("Synced rules", "mode", r.opts.Mode, "ipFamily", snap.Family, "full", res.Full,
			"services", snap.Len(), "changed", len(snap.Changed), "changedServices", changedNames(snap, loggedChanges),
			"restoreBytes", res.RestoreBytes, "elapsed", elapsed)
	}
	return nil
}

// loggedChanges is how many changed service ports a sync's log line names.
const loggedChanges = 10

// changedNames returns the first max changed service ports in name order,
// then "... and N more" if there are others.
func changedNames(snap *Snapshot, max int) []string {
	names := make([]string, 0, len(snap.Changed))
	for n := range snap.Changed {
		names = append(names, n.String())
	}
	slices.Sort(names)
	if len(names) > max {
		names = append(names[:max], fmt.Sprintf("... and %d more", len(names)-max))
	}
	return names
}

// account records a sync's outcome. requests is forceRequests as the sync
// started: a ForceFull that came during the sync still holds for the next.
func (r *Runner) account(snap *Snapshot, res SyncResult, err error, start time.Time, requests uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.forceFull = true
		return
	}
	r.forceFull = r.forceRequests != requests
	if res.Full || snap.Full {
		r.lastFull = start
	}
}
