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

// viaRunner drives a Proxier the way cmd/kproxy does: a proxier.Runner,
// which owns "the next sync must be full" (the first sync, after a
// failure, after ForceFull), syncs it from the world's Tracker.
type viaRunner struct {
	runner *proxier.Runner
	last   proxier.SyncResult
}

func newViaRunner(t *testing.T, p *iptables.Proxier, w *world) *viaRunner {
	t.Helper()
	v := &viaRunner{}
	r, err := proxier.NewRunner(proxier.RunnerOptions{Tracker: w.Tracker(), Backend: p, RetryInterval: time.Second,
		FullSyncInterval: time.Hour, Observers: []proxier.SyncObserver{v}, Logger: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	v.runner = r
	return v
}

// sync runs one sync of what the world holds now.
func (v *viaRunner) sync() (proxier.SyncResult, error) {
	v.last = proxier.SyncResult{}
	err := v.runner.SyncOnce(context.Background())
	return v.last, err
}

func (v *viaRunner) mustSync(t *testing.T) proxier.SyncResult {
	t.Helper()
	res, err := v.sync()
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return res
}

func (v *viaRunner) Queued(v1.IPFamily) {}
func (v *viaRunner) Synced(_ context.Context, _ *proxier.Snapshot, res proxier.SyncResult, _ time.Duration, _ error) {
	v.last = res
}
