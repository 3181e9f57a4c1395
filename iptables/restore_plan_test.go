package iptables

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// TestRestartWithoutSaveRestoresInBatches: a restart that cannot read the
// nat table writes service chains in several restores, each valid alone
// (the Fake rejects jumps to missing chains), and ends with the same tables
// as a sync that could read the kernel.
func TestRestartWithoutSaveRestoresInBatches(t *testing.T) {
	snap := scaleWorld(t, 30, 3).Snapshot()
	fake := ruleset.NewFake(ruleset.FakeOptions{})
	first := newBatchProxier(t, fake)
	if _, err := first.Sync(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	want := ruleset.FormatSave(fake.Table("nat")) + ruleset.FormatSave(fake.Table("filter"))
	// Damage one service chain's content so the restart has something to repair.
	svc1 := first.renderer.state.port(spn("ns1", "svc1")).chains.Cluster
	if err := fake.Restore(context.Background(), []byte("*nat\n-F "+svc1+"\nCOMMIT\n")); err != nil {
		t.Fatal(err)
	}
	fake.FailSaves(errors.New("iptables-save crashed"))
	restarted := newBatchProxier(t, fake)
	before := fake.RestoreCount()
	if _, err := restarted.Sync(context.Background(), snap); err != nil {
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
	r := NewRenderer(testOptions())
	g := r.Render(scaleWorld(t, 5, 2).Snapshot())
	chains := append(slices.Clone(g.table("nat").chains), chainText{name: "KUBE-SVC-STALE"})
	batches, rest := splitServiceBatches(chains, 4)
	seen := map[string]int{}
	for i, b := range batches {
		for _, c := range b {
			if c.name == netfilter.MarkMasqChain && i != 0 {
				t.Errorf("KUBE-MARK-MASQ in batch %d, want the first", i)
			}
			if owner, ok := g.view().active[c.name]; ok {
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
		if _, ok := g.view().active[c.name]; ok {
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

func TestPlanRestoreLaysOutForTheKernel(t *testing.T) {
	big := scaleWorld(t, 300, 3).Snapshot() // 1200 service chains
	for _, tc := range []struct {
		name string
		snap *proxier.Snapshot
		ks   *kernelState
		// want: nat's first block prefixed with "-S"; a second nat block
		// for the inserts; service chains restored in batches.
		prefix, ownInserts, batches bool
	}{
		{name: "small full sync", snap: diffWorld(t).Snapshot(), ks: emptyTables(true)},
		{name: "large full sync into empty tables read whole", snap: big, ks: emptyTables(true), prefix: true, ownInserts: true},
		{name: "large full sync into empty listed tables", snap: big, ks: emptyTables(false), prefix: true, ownInserts: true},
		{name: "large full sync over a big table read whole", snap: big, ks: tablesOf(1200, true)},
		{name: "large full sync over a big listed table", snap: big, ks: tablesOf(1200, false), batches: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testDiffOptions()
			ch := diff(tc.ks, NewRenderer(testOptions()).Render(tc.snap), o)
			p := planRestore(ch, tc.ks, layoutOptions{services: tc.snap.Len(), batchChains: 400})
			var nats []*tableText
			for i, b := range p.blocks {
				if b.name == "nat" {
					nats = append(nats, b)
				} else if len(nats) > 0 {
					t.Errorf("block %d (%s) after nat", i, b.name)
				}
			}
			if nats[0].listPrefix != tc.prefix || (len(nats) == 2) != tc.ownInserts || (len(p.batches) > 0) != tc.batches {
				t.Errorf("prefix %v, nat blocks %d, batches %d; want prefix %v, own inserts block %v, batches %v",
					nats[0].listPrefix, len(nats), len(p.batches), tc.prefix, tc.ownInserts, tc.batches)
			}
			if tc.ownInserts && (len(nats[0].inserts) > 0 || len(nats[1].inserts) == 0) {
				t.Errorf("inserts %q stayed in the prefixed block", nats[0].inserts)
			}
			for _, b := range p.batches {
				if len(b) > 400+5 {
					t.Errorf("batch of %d chains, limit 400 (plus the rest of a service and KUBE-MARK-MASQ)", len(b))
				}
			}
		})
	}
}

// emptyTables is a kernelState of empty nat and filter tables (whole: read
// with iptables-save), without the jump rules.
func emptyTables(whole bool) *kernelState {
	return tablesOf(0, whole)
}

// tablesOf is a kernelState whose nat table holds n chains that are none
// of the rendering's.
func tablesOf(n int, whole bool) *kernelState {
	ks := &kernelState{tables: map[string]*kernelTable{}}
	for _, name := range []string{"nat", "filter"} {
		ks.tables[name] = &kernelTable{listed: map[string]uint64{}, whole: whole}
	}
	ks.tables["nat"].count = n
	for _, j := range netfilter.IPTablesJumpRules() {
		ks.missingJumps = append(ks.missingJumps, missingJump{rule: j})
	}
	return ks
}

func TestWantsListPrefix(t *testing.T) {
	for _, tc := range []struct {
		declared, existing int
		want               bool
	}{
		{declared: 10, existing: 0, want: false},
		{declared: 11000, existing: 4, want: true},
		{declared: 11000, existing: 11000, want: false},
		{declared: 2000, existing: 499, want: true},
		{declared: 2000, existing: 500, want: false},
	} {
		if got := wantsListPrefix(tc.declared, tc.existing); got != tc.want {
			t.Errorf("wantsListPrefix(%d, %d) = %v, want %v", tc.declared, tc.existing, got, tc.want)
		}
	}
}
