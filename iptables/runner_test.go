package iptables_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-logr/logr"
	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/iptables"
	"github.com/kproxy/kproxy/proxier"
)

// viaRunner drives a Proxier the way cmd/kproxy does, through a
// proxier.Runner, which owns "the next sync must be full" (the first sync,
// after a failure, after ForceFull); the test scripts the snapshots.
type viaRunner struct {
	runner *proxier.Runner
	next   *proxier.Snapshot
	last   proxier.SyncResult
}

func newViaRunner(t *testing.T, p *iptables.Proxier) *viaRunner {
	t.Helper()
	v := &viaRunner{}
	r, err := proxier.NewRunner(proxier.RunnerOptions{Tracker: v, Backend: p, RetryInterval: time.Second,
		FullSyncInterval: time.Hour, Observers: []proxier.SyncObserver{v}, Logger: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	v.runner = r
	return v
}

// sync hands snap to the runner, which decides whether it is full: a
// snapshot the test marks full is requested with ForceFull first.
func (v *viaRunner) sync(snap *proxier.Snapshot) (proxier.SyncResult, error) {
	if snap.Full {
		v.runner.ForceFull()
	}
	v.next, v.last = snap, proxier.SyncResult{}
	err := v.runner.SyncOnce(context.Background())
	return v.last, err
}

func (v *viaRunner) mustSync(t *testing.T, snap *proxier.Snapshot) proxier.SyncResult {
	t.Helper()
	res, err := v.sync(snap)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return res
}

// The scripted snapshot source.
func (v *viaRunner) Family() v1.IPFamily         { return v1.IPv4Protocol }
func (v *viaRunner) Initialized() bool           { return true }
func (v *viaRunner) Snapshot() *proxier.Snapshot { return v.next }
func (v *viaRunner) Requeue(*proxier.Snapshot)   {}
func (v *viaRunner) Queued(v1.IPFamily)          {}
func (v *viaRunner) Synced(_ context.Context, _ *proxier.Snapshot, res proxier.SyncResult, _ time.Duration, _ error) {
	v.last = res
}
