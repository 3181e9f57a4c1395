package proxier

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// The Runner is the one owner of "the next sync must be full": backends
// (the iptables Proxier diffs partial syncs against its memory of the last
// successful one) rely on never seeing a partial snapshot first, after a
// failed sync, or after a ForceFull.

// step is one sync of a script: whether the backend fails it, and whether
// a ForceFull arrives while it runs.
type step struct{ fail, forceDuring bool }

func (s step) String() string { return fmt.Sprintf("fail=%v force=%v", s.fail, s.forceDuring) }

// scriptedBackend fails or succeeds syncs as its script says.
type scriptedBackend struct {
	script []step
	runner *Runner
	snaps  []*Snapshot
}

func (b *scriptedBackend) Sync(_ context.Context, s *Snapshot) (SyncResult, error) {
	st := b.script[len(b.snaps)]
	b.snaps = append(b.snaps, s)
	if st.forceDuring {
		b.runner.ForceFull()
	}
	if st.fail {
		return SyncResult{}, errors.New("restore failed")
	}
	return SyncResult{Full: s.Full}, nil
}

// scripts returns every script of n steps.
func scripts(n int) [][]step {
	kinds := []step{{}, {fail: true}, {forceDuring: true}, {fail: true, forceDuring: true}}
	out := [][]step{nil}
	for range n {
		var next [][]step
		for _, s := range out {
			for _, k := range kinds {
				next = append(next, append(append([]step(nil), s...), k))
			}
		}
		out = next
	}
	return out
}

// TestRunnerNeverSyncsPartiallyWhenAFullSyncIsOwed runs every script of
// five syncs (1024 of them): the first sync, every sync after a failure and
// every sync after a ForceFull (also one that came during the sync before)
// is full; every other sync is partial, so the test would notice a runner
// that simply made every sync full.
func TestRunnerNeverSyncsPartiallyWhenAFullSyncIsOwed(t *testing.T) {
	for _, script := range scripts(5) {
		tr := newTestTracker()
		tr.OnServiceAdd(svc("ns", "s", "10.0.0.1"))
		be := &scriptedBackend{script: script}
		r, err := NewRunner(RunnerOptions{Tracker: tr, Backend: be, RetryInterval: time.Second,
			FullSyncInterval: time.Hour, Logger: logr.Discard()})
		if err != nil {
			t.Fatal(err)
		}
		be.runner = r
		for range script {
			_ = r.SyncOnce(context.Background())
		}
		for i, snap := range be.snaps {
			owed := i == 0 || script[i-1].fail || script[i-1].forceDuring
			if snap.Full != owed {
				t.Fatalf("script %v: sync %d full=%v, want %v", script, i, snap.Full, owed)
			}
		}
	}
}
