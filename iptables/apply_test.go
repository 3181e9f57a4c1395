package iptables

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// Tests of the apply step and of what it leaves in the memory.

// restoreLog records restore inputs and fails the nth (from 1) if asked.
type restoreLog struct {
	*ruleset.Fake
	inputs [][]byte
	failAt int
}

func (r *restoreLog) Restore(ctx context.Context, data []byte) error {
	r.inputs = append(r.inputs, bytes.Clone(data))
	if len(r.inputs) == r.failAt {
		return errors.New("injected")
	}
	return r.Fake.Restore(ctx, data)
}

func TestApplyRestoresBatchesBeforeTheRest(t *testing.T) {
	ks := tablesOf(1000, false)
	plan := planRestore(diff(ks, NewRenderer(testOptions()).Render(scaleWorld(t, 20, 3).Snapshot()), testDiffOptions()), ks,
		layoutOptions{services: 20, batchChains: 30})
	if len(plan.batches) < 2 {
		t.Fatalf("%d batches; the test needs several", len(plan.batches))
	}
	for _, failAt := range []int{0, 2} {
		log := &restoreLog{Fake: ruleset.NewFake(ruleset.FakeOptions{}), failAt: failAt}
		p, err := New(Options{Restorer: log, Render: testOptions()})
		if err != nil {
			t.Fatal(err)
		}
		written, err := p.apply(t.Context(), plan, netfilter.Known{})
		if failAt > 0 {
			if err == nil || len(log.inputs) != failAt || written != len(log.inputs[0]) {
				t.Errorf("batch %d failed: err %v after %d restores, %d bytes counted", failAt, err, len(log.inputs), written)
			}
			continue
		}
		total := 0
		for i, in := range log.inputs {
			total += len(in)
			if last := i == len(log.inputs)-1; last != bytes.Contains(in, []byte(":KUBE-SERVICES ")) {
				t.Errorf("restore %d of %d: holds KUBE-SERVICES %v", i+1, len(log.inputs), !last)
			}
		}
		if err != nil || len(log.inputs) != len(plan.batches)+1 || written != total {
			t.Errorf("err %v, %d restores for %d batches, %d bytes counted of %d", err, len(log.inputs), len(plan.batches), written, total)
		}
	}
}

func TestMemoryIsWhatTheLastSuccessfulSyncLeft(t *testing.T) {
	fake := ruleset.NewFake(ruleset.FakeOptions{})
	w := diffWorld(t)
	p, r, _ := syncedReader(t, fake, w)
	remembered := func(table string) []string { return slices.Sorted(maps.Keys(r.memory.tables[table])) }
	var declared []string
	for _, c := range fake.Table("nat").Chains {
		if c.Policy == ruleset.PolicyNone {
			declared = append(declared, c.Name)
		}
	}
	slices.Sort(declared)
	if got := remembered("nat"); !slices.Equal(got, declared) {
		t.Errorf("after a full sync memory holds nat %v, the kernel %v", got, declared)
	}

	// A failed partial sync that drops svc2 teaches the memory nothing but
	// the chains still to delete.
	svc2Chain := p.renderer.state.port(spn("ns2", "svc2")).chains.Cluster
	snap := w.Delete(svc2()).Snapshot()
	before := maps.Clone(r.memory.tables["nat"])
	fake.FailNextRestore(errors.New("injected"))
	if _, err := p.Sync(t.Context(), snap); err == nil {
		t.Fatal("injected failure not reported")
	}
	same := maps.EqualFunc(before, r.memory.tables["nat"], func(a, b chainState) bool {
		return a.rendered == b.rendered && a.saved == b.saved && bytes.Equal(a.text, b.text)
	})
	if !same || !containsName(r.orphans, svc2Chain) {
		t.Errorf("after a failed sync: memory unchanged %v, orphans %v", same, r.orphans)
	}

	// The retry deletes them and the memory forgets them.
	if _, err := p.Sync(t.Context(), snap); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.memory.tables["nat"][svc2Chain]; ok || hasChainIn(fake, svc2Chain) || len(r.orphans) != 0 {
		t.Errorf("after the retry: %s remembered %v, in the kernel %v; orphans %v", svc2Chain, ok, hasChainIn(fake, svc2Chain), r.orphans)
	}

	// It learned the chains the partial sync rewrote (KUBE-SERVICES lost
	// svc2's rules): the same sync again writes none.
	if _, err := p.Sync(t.Context(), snap); err != nil {
		t.Fatal(err)
	}
	if in := fake.LastRestore(); bytes.Contains(in, []byte("\n:")) {
		t.Errorf("a repeated partial sync rewrites chains:\n%s", in)
	}
}

func hasChainIn(f *ruleset.Fake, chain string) bool { return f.Table("nat").Chain(chain) != nil }
