package iptables_test

import (
	"context"
	"errors"
	"testing"

	"github.com/kproxy/kproxy/iptables"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// saveOnly hides the Fake's ListChain, as a Restorer without the optional
// ChainLister capability.
type saveOnly struct{ f *ruleset.Fake }

func (s saveOnly) Restore(ctx context.Context, data []byte) error { return s.f.Restore(ctx, data) }
func (s saveOnly) Save(ctx context.Context, table string) ([]byte, error) {
	return s.f.Save(ctx, table)
}

var errSaveCrashed = errors.New("iptables-save: signal: segmentation fault")

// builtinJumpsOnce checks that every jump rule sits exactly once in its chain.
func builtinJumpsOnce(t *testing.T, f *ruleset.Fake) {
	t.Helper()
	for _, j := range []struct{ table, from, to string }{
		{"nat", "PREROUTING", "KUBE-SERVICES"}, {"nat", "OUTPUT", "KUBE-SERVICES"},
		{"nat", "POSTROUTING", "KUBE-POSTROUTING"}, {"filter", "INPUT", "KUBE-NODEPORTS"},
		{"filter", "FORWARD", "KUBE-FORWARD"}, {"filter", "OUTPUT", "KUBE-FIREWALL"},
	} {
		if n := jumpCount(f, j.table, j.from, j.to); n != 1 {
			t.Errorf("%s %s has %d jumps to %s, want 1", j.table, j.from, n, j.to)
		}
	}
}

// TestFullSyncWithoutSave covers a full sync whose iptables-save fails: a
// running proxier falls back to memory, a restarted one to chain listings.
// Either way the tables end as a sync with a working Save leaves them.
func TestFullSyncWithoutSave(t *testing.T) {
	w := newWorld(t)
	gone := svcSpec{"ns3", "gone", "172.30.0.43", 3003, []string{"10.180.0.7", "10.180.0.8"}}
	for _, tc := range []struct {
		name string
		// restart uses a new proxier for the failing sync.
		restart bool
		// flush empties the tables before the failing sync.
		flush bool
		// noLister hides ListChain.
		noLister bool
		// rewrite lists nat chains the sync must declare, keep those it must not.
		rewrite, keep []string
	}{
		{name: "memory", rewrite: []string{"KUBE-SERVICES"}, keep: []string{svc1Chain, sep1, svc2Chain}},
		{name: "memory without lister", noLister: true, keep: []string{svc1Chain, sep1}},
		{name: "memory after flush", flush: true, rewrite: []string{svc1Chain, sep1, svc2Chain}},
		{name: "restart", restart: true, rewrite: []string{svc1Chain, sep1, svc2Chain}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := ruleset.NewFake(ruleset.FakeOptions{})
			var r netfilter.Restorer = fake
			if tc.noLister {
				r = saveOnly{fake}
			}
			p := newProxierFor(t, r)
			mustSync(t, p, w.full(svc1, svc2, gone))
			mustSync(t, p, w.full(svc1, svc2))
			want := saveAll(fake)
			mustSync(t, p, w.full(svc1, svc2, gone))
			if tc.flush {
				flushAll(t, fake)
			}
			if tc.restart {
				p = newProxierFor(t, r)
			}
			fake.FailSaves(errSaveCrashed)
			res := mustSync(t, p, w.full(svc1, svc2))
			if !res.Full {
				t.Errorf("sync not full")
			}
			in := fake.LastRestore()
			for _, c := range tc.rewrite {
				if !declares(in, "nat", c) {
					t.Errorf("%s not written\ninput:\n%s", c, in)
				}
			}
			for _, c := range tc.keep {
				if declares(in, "nat", c) {
					t.Errorf("unchanged %s rewritten\ninput:\n%s", c, in)
				}
			}
			if got := saveAll(fake); got != want {
				t.Errorf("tables differ from a sync with a working Save:\n%s\nwant:\n%s", got, want)
			}
			builtinJumpsOnce(t, fake)
		})
	}
}

// TestRestartWithoutSaveOrListerFails keeps the old contract when the kernel
// cannot be read at all: the sync fails rather than duplicating jump rules.
func TestRestartWithoutSaveOrListerFails(t *testing.T) {
	w := newWorld(t)
	fake := ruleset.NewFake(ruleset.FakeOptions{})
	fake.FailSaves(errSaveCrashed)
	p := newProxierFor(t, saveOnly{fake})
	if _, err := p.Sync(context.Background(), w.full(svc1)); !errors.Is(err, errSaveCrashed) {
		t.Fatalf("sync error = %v, want the Save error", err)
	}
	if fake.RestoreCount() != 0 {
		t.Errorf("restored without knowing the kernel")
	}
}

// TestFailedMemorySyncDistrustsMemory: when a memory-based full sync fails,
// the next one relists instead of repeating the same input.
func TestFailedMemorySyncDistrustsMemory(t *testing.T) {
	w := newWorld(t)
	fake := ruleset.NewFake(ruleset.FakeOptions{})
	p := newProxier(t, fake)
	mustSync(t, p, w.full(svc1, svc2))
	want := saveAll(fake)
	// Lose a chain behind the proxier's back without touching the canary.
	if err := fake.Restore(context.Background(), []byte("*nat\n:"+sep1+" - [0:0]\nCOMMIT\n")); err != nil {
		t.Fatal(err)
	}
	fake.FailSaves(errSaveCrashed)
	fake.FailNextRestore(errors.New("injected"))
	if _, err := p.Sync(context.Background(), w.full(svc1, svc2)); err == nil {
		t.Fatal("injected failure not reported")
	}
	mustSync(t, p, w.next(svc1, svc2))
	if !declares(fake.LastRestore(), "nat", sep1) {
		t.Errorf("retry after a failed memory-based sync trusted memory again")
	}
	if got := saveAll(fake); got != want {
		t.Errorf("tables not repaired:\n%s\nwant:\n%s", got, want)
	}
}

func newProxierFor(t *testing.T, r netfilter.Restorer) *iptables.Proxier {
	t.Helper()
	if f, ok := r.(*ruleset.Fake); ok {
		return newProxier(t, f)
	}
	p, err := iptables.New(iptables.Options{Restorer: r, Render: iptables.RenderOptions{
		MasqueradeMark: "0x00004000",
		LocalDetector:  netfilter.LocalDetector{IfLocal: []string{"-s", "10.0.0.0/8"}, IfNotLocal: []string{"!", "-s", "10.0.0.0/8"}},
		RandomFully:    true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// flushAll empties every chain and deletes user chains, as "iptables -F; -X" would.
func flushAll(t *testing.T, f *ruleset.Fake) {
	t.Helper()
	for _, table := range []string{"nat", "filter", "mangle"} {
		in := "*" + table + "\n"
		for _, c := range f.Table(table).Chains {
			in += "-F " + c.Name + "\n"
		}
		for _, c := range f.Table(table).Chains {
			if c.Policy == ruleset.PolicyNone {
				in += "-X " + c.Name + "\n"
			}
		}
		if err := f.Restore(context.Background(), []byte(in+"COMMIT\n")); err != nil {
			t.Fatal(err)
		}
	}
}

var _ proxier.Backend = (*iptables.Proxier)(nil)

// TestChainsDroppedByAFailedSyncAreDeletedLater: the renderer reports a
// removed service's chains once; when that sync fails, the retry (full,
// without a Save) must still delete them.
func TestChainsDroppedByAFailedSyncAreDeletedLater(t *testing.T) {
	w := newWorld(t)
	fake := ruleset.NewFake(ruleset.FakeOptions{})
	p := newProxier(t, fake)
	mustSync(t, p, w.full(svc1, svc2))
	fake.FailNextRestore(errors.New("injected"))
	if _, err := p.Sync(context.Background(), w.next(svc1)); err == nil {
		t.Fatal("injected failure not reported")
	}
	fake.FailSaves(errSaveCrashed)
	mustSync(t, p, w.next(svc1))
	if hasChain(fake, "nat", svc2Chain) {
		t.Errorf("chain of a service removed during a failed sync survived the retry")
	}
	if !hasChain(fake, "nat", svc1Chain) || !hasChain(fake, "nat", sep1) {
		t.Errorf("live chains deleted")
	}
}

// TestFailedFullSyncLeavesMemoryAsTheKernelIs: a full sync that reads
// nat whole compares it with the rendering; when its restore then fails,
// the memory must still describe the kernel as it is. (It once learned the
// failed rendering's rules, so that the next full sync, without a working
// Save, skipped a service chain the kernel held differently and failed
// deleting the endpoint chain that chain still jumped to.)
func TestFailedFullSyncLeavesMemoryAsTheKernelIs(t *testing.T) {
	w := newWorld(t)
	shrunk := svc1
	shrunk.endpoints = []string{"10.180.0.1"}
	fresh := ruleset.NewFake(ruleset.FakeOptions{})
	mustSync(t, newProxier(t, fresh), w.full(shrunk, svc2))

	fake := ruleset.NewFake(ruleset.FakeOptions{})
	p := newProxier(t, fake)
	mustSync(t, p, w.full(svc1, svc2))
	fake.FailNextRestore(errors.New("injected"))
	if _, err := p.Sync(context.Background(), w.full(shrunk, svc2)); err == nil {
		t.Fatal("injected failure not reported")
	}
	fake.FailSaves(errSaveCrashed)
	mustSync(t, p, w.full(shrunk, svc2))
	if hasChain(fake, "nat", sep2) {
		t.Errorf("endpoint chain %s of the removed endpoint survived", sep2)
	}
	if got, want := saveAll(fake), saveAll(fresh); got != want {
		t.Errorf("tables differ from a first sync of the same state:\n%s\nwant:\n%s", got, want)
	}
}
