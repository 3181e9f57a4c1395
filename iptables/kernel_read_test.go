package iptables

import (
	"errors"
	"fmt"
	"testing"

	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
	pt "github.com/kproxy/kproxy/proxier/proxiertest"
)

// Tests of the read step alone: what kernelState it builds from the Fake
// and the memory, and which reads that costs.

// readerOnly hides the Fake's ListChain: only Restorer's methods are promoted.
type readerOnly struct{ netfilter.Restorer }

// syncedReader is the read step of a proxier that synced w's next
// snapshot, which it returns too.
func syncedReader(t *testing.T, r netfilter.Restorer, w *pt.World) (*Proxier, *kernelReader, *proxier.Snapshot) {
	t.Helper()
	p, err := New(Options{Restorer: r, Render: testOptions()})
	if err != nil {
		t.Fatal(err)
	}
	snap := w.Snapshot()
	if _, err := p.Sync(t.Context(), snap); err != nil {
		t.Fatal(err)
	}
	return p, &p.kernel, snap
}

// readerOver is the read step of a proxier that synced diffWorld into a
// Fake, to which input then happened behind its back.
func readerOver(t *testing.T, input string) (*ruleset.Fake, *pt.World, *proxier.Snapshot, *kernelReader) {
	t.Helper()
	fake := ruleset.NewFake(ruleset.FakeOptions{})
	w := diffWorld(t)
	_, r, snap := syncedReader(t, fake, w)
	if err := fake.Restore(t.Context(), []byte(input)); err != nil {
		t.Fatal(err)
	}
	return fake, w, snap, r
}

// readsOf counts the Saves and listings fn makes.
func readsOf(f *ruleset.Fake, fn func()) (saves, lists int) {
	s0, l0 := f.Reads()
	fn()
	s1, l1 := f.Reads()
	return s1 - s0, l1 - l0
}

func fullRequest(snap *proxier.Snapshot) readRequest {
	return readRequest{full: true, snap: snap, endpoints: 3}
}

func TestReadPartialIsTheMemory(t *testing.T) {
	fake := ruleset.NewFake(ruleset.FakeOptions{})
	w := diffWorld(t)
	p, r, _ := syncedReader(t, fake, w)
	svc1 := p.renderer.state.port(spn("ns1", "svc1")).chains.Cluster
	next := w.Snapshot() // partial, nothing changed
	var ks *kernelState
	if saves, lists := readsOf(fake, func() { ks, _ = r.read(t.Context(), readRequest{snap: next}) }); saves+lists != 0 {
		t.Errorf("a partial read ran %d Saves and %d listings", saves, lists)
	}
	nat := ks.table("nat")
	if k, ok := ks.chain(nat, netfilter.ServicesChain); !ok || k.listed || len(k.text) == 0 {
		t.Errorf("KUBE-SERVICES as remembered: %+v, %v; want its rules", k, ok)
	}
	if k, ok := ks.chain(nat, svc1); !ok || k.rendered == 0 {
		t.Errorf("%s not remembered: %+v", svc1, k)
	}
	known := ks.known()
	if _, ok := known.Chain("filter", netfilter.ServicesChain); !ok {
		t.Error("the rollback snapshot cannot learn filter KUBE-SERVICES from the memory")
	}
	if _, ok := known.Chain("nat", svc1); ok {
		t.Error("the rollback snapshot learns a per-service chain from the memory")
	}
}

func TestReadPartialSavesNatWhenAServiceWentAway(t *testing.T) {
	fake, w, _, r := readerOver(t, "*nat\n:KUBE-SEP-LEFTOVER0000000 - [0:0]\nCOMMIT\n")
	next := w.Delete(svc2()).Snapshot()
	var ks *kernelState
	if saves, lists := readsOf(fake, func() { ks, _ = r.read(t.Context(), readRequest{snap: next}) }); saves != 1 || lists != 0 {
		t.Errorf("%d Saves and %d listings, want one Save of nat", saves, lists)
	}
	if !containsName(ks.stale, "KUBE-SEP-LEFTOVER0000000") {
		t.Errorf("stale %v lacks the leftover chain", ks.stale)
	}
	if _, ok := ks.known().Table("nat"); !ok {
		t.Error("the nat save is not offered to the rollback snapshot")
	}
}

func TestReadFull(t *testing.T) {
	leftover := "*nat\n:KUBE-SVC-LEFTOVER0000000 - [0:0]\n-A KUBE-SERVICES -d 172.30.9.9/32 -j KUBE-SVC-LEFTOVER0000000\nCOMMIT\n"
	for _, tc := range []struct {
		name string
		// saveFails and noLister make Saves fail and hide ListChain;
		// forget calls ForgetKernelState; large pretends nat is too large to save.
		saveFails, noLister, forget, large bool
		// want: the kernelState's provenance; saves the Saves it runs;
		// listed, whether it lists the jump chains.
		whole, standsIn, walked, fails, listed bool
		saves                                  int
	}{
		{name: "small tables are saved", whole: true, saves: 2},
		{name: "a failed Save falls back to memory and listings", saveFails: true, standsIn: true, saves: 1, listed: true},
		{name: "a nat table too large is not saved", large: true, standsIn: true, listed: true},
		{name: "a distrusted memory is not used", saveFails: true, forget: true, walked: true, saves: 1, listed: true},
		{name: "without listings the memory stands in", saveFails: true, noLister: true, standsIn: true, saves: 1},
		{name: "nothing to read from", saveFails: true, noLister: true, forget: true, fails: true, saves: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := ruleset.NewFake(ruleset.FakeOptions{})
			var rs netfilter.Restorer = fake
			if tc.noLister {
				rs = readerOnly{fake}
			}
			_, r, snap := syncedReader(t, rs, diffWorld(t))
			if err := fake.Restore(t.Context(), []byte(leftover)); err != nil {
				t.Fatal(err)
			}
			if tc.saveFails {
				fake.FailSaves(errors.New("iptables-save crashed"))
			}
			if tc.large {
				for i := range saveMaxChains {
					r.memory.tables["nat"][fmt.Sprintf("KUBE-SEP-%016d", i)] = chainState{}
				}
			}
			if tc.forget {
				r.forget.Store(true)
				r.startSync()
			}
			var ks *kernelState
			var err error
			saves, lists := readsOf(fake, func() {
				if ks, err = r.read(t.Context(), fullRequest(snap)); err == nil {
					err = r.readStale(t.Context(), ks, NewRenderer(testOptions()).Render(snap))
				}
			})
			wantLists := 0
			if tc.listed {
				wantLists = len(jumpChains("nat")) + len(jumpChains("filter"))
			}
			if tc.walked {
				wantLists++ // the leftover chain, and no active one
			}
			if saves != tc.saves || lists != wantLists {
				t.Errorf("%d Saves and %d listings, want %d and %d", saves, lists, tc.saves, wantLists)
			}
			if tc.fails {
				if err == nil {
					t.Error("read without any way to read the kernel succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			found := containsName(ks.stale, "KUBE-SVC-LEFTOVER0000000")
			if ks.readWhole("nat") != tc.whole || ks.memoryStandsIn != tc.standsIn || found != (tc.whole || tc.walked) {
				t.Errorf("whole %v, memory stands in %v, leftover found %v; want %v, %v, %v",
					ks.readWhole("nat"), ks.memoryStandsIn, found, tc.whole, tc.standsIn, tc.whole || tc.walked)
			}
			if len(ks.missingJumps) != 0 {
				t.Errorf("jumps %v missing after a sync", ks.missingJumps)
			}
		})
	}
}

func TestReadFullFindsMissingJumps(t *testing.T) {
	fake, _, snap, r := readerOver(t, "*nat\n-D OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\nCOMMIT\n")
	for _, saveFails := range []bool{false, true} {
		if saveFails {
			fake.FailSaves(errors.New("iptables-save crashed"))
		}
		ks, err := r.read(t.Context(), fullRequest(snap))
		if err != nil {
			t.Fatal(err)
		}
		if len(ks.missingJumps) != 1 || ks.missingJumps[0].rule.From != "OUTPUT" || !ks.missingJumps[0].targetExists {
			t.Errorf("save fails %v: missing jumps %+v, want nat OUTPUT → KUBE-SERVICES (existing)", saveFails, ks.missingJumps)
		}
	}
}
