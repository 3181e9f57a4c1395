package iptables

import (
	"context"
	"errors"
	"testing"

	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// TestRestartWithoutSaveRestoresInBatches: a restart that cannot read the
// nat table writes service chains in several restores, each valid alone
// (the Fake rejects jumps to missing chains), and ends with the same tables
// as a sync that could read the kernel.
func TestRestartWithoutSaveRestoresInBatches(t *testing.T) {
	w := scaleWorld(30, 3)
	fake := ruleset.NewFake(ruleset.FakeOptions{})
	first := newBatchProxier(t, fake)
	if _, err := first.Sync(context.Background(), w.snap); err != nil {
		t.Fatal(err)
	}
	want := ruleset.FormatSave(fake.Table("nat")) + ruleset.FormatSave(fake.Table("filter"))
	// Damage one service chain's content so the restart has something to repair.
	svc1 := first.renderer.state.port(w.name("ns1", "svc1")).chains.Cluster
	if err := fake.Restore(context.Background(), []byte("*nat\n-F "+svc1+"\nCOMMIT\n")); err != nil {
		t.Fatal(err)
	}
	fake.FailSaves(errors.New("iptables-save crashed"))
	restarted := newBatchProxier(t, fake)
	before := fake.RestoreCount()
	if _, err := restarted.Sync(context.Background(), w.snap); err != nil {
		t.Fatal(err)
	}
	// 30 services × (SVC + EXT + 3 SEP) = 150 chains in batches of ~40, plus the final restore.
	if n := fake.RestoreCount() - before; n < 4 {
		t.Errorf("restart used %d restores, want batches", n)
	}
	got := ruleset.FormatSave(fake.Table("nat")) + ruleset.FormatSave(fake.Table("filter"))
	if got != want {
		t.Errorf("tables after a batched restart differ:\n%s\nwant:\n%s", got, want)
	}
}

func newBatchProxier(t *testing.T, r netfilter.Restorer) *Proxier {
	t.Helper()
	p, err := New(Options{Restorer: r, Render: testOptions()})
	if err != nil {
		t.Fatal(err)
	}
	p.batchChains = 40
	return p
}

func TestSplitServiceBatchesKeepsServicesWhole(t *testing.T) {
	w := scaleWorld(5, 2)
	r := NewRenderer(testOptions())
	g := r.Render(w.snap)
	nat := g.table("nat")
	nat.deleteChain("KUBE-SVC-STALE")
	batches, rest := splitServiceBatches(nat, g.active, 4)
	seen := map[string]int{}
	for i, b := range batches {
		for _, c := range b {
			if c.name == netfilter.MarkMasqChain && i != 0 {
				t.Errorf("KUBE-MARK-MASQ in batch %d, want the first", i)
			}
			if owner, ok := g.active[c.name]; ok {
				if j, dup := seen[owner.str]; dup && j != i {
					t.Errorf("service %s split across batches %d and %d", owner.str, j, i)
				}
				seen[owner.str] = i
			}
		}
	}
	if len(seen) != 5 || len(batches) < 2 {
		t.Errorf("batches cover %d services in %d batches, want 5 in several", len(seen), len(batches))
	}
	for _, c := range rest {
		if _, ok := g.active[c.name]; ok {
			t.Errorf("active service chain %s left out of the batches", c.name)
		}
	}
	if !containsChain(rest, "KUBE-SVC-STALE") || !containsChain(rest, netfilter.ServicesChain) {
		t.Errorf("stale or top-level chains not in rest: %v", rest)
	}
}

func containsChain(cs []chainText, name string) bool {
	for _, c := range cs {
		if c.name == name {
			return true
		}
	}
	return false
}
