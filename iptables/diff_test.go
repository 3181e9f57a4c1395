package iptables

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
	pt "github.com/kproxy/kproxy/proxier/proxiertest"
)

// Tests of the diff step alone: a Rendering and a hand-built kernelState
// in, changes out.

// diffWorld is two services: svc1 (ClusterIP and NodePort, two endpoints)
// and svc2 (one endpoint, see svc2).
func diffWorld(t testing.TB) *pt.World {
	return newWorld(t).
		ApplyService(pt.Service("ns1", "svc1", pt.ClusterIP("172.30.0.41"), pt.NodePort(3001)), pt.Endpoint("10.180.0.1"), pt.Endpoint("10.180.0.2")).
		ApplyService(svc2(), pt.Endpoint("10.180.0.3"))
}

// svc2 is diffWorld's ns2/svc2 Service.
func svc2() *v1.Service { return pt.Service("ns2", "svc2", pt.ClusterIP("172.30.0.42")) }

func testDiffOptions() diffOptions {
	return diffOptions{family: v1.IPv4Protocol, seed: maphash.MakeSeed()}
}

// remembering is a kernelState whose memory holds g as rendered, as after
// a successful sync of it (rules: a partial sync's view).
func remembering(g *Rendering, o diffOptions, rules bool) *kernelState {
	ks := &kernelState{tables: map[string]*kernelTable{}, rememberedRules: rules}
	for _, t := range g.view().tables {
		chains := map[string]chainState{}
		for i := range t.chains {
			c := &t.chains[i]
			chains[c.name] = chainState{rendered: maphash.Bytes(o.seed, c.rules), text: topLevelText(c)}
		}
		ks.tables[t.name] = &kernelTable{remembered: chains, count: len(chains)}
	}
	return ks
}

// reading is a kernelState read from the Fake's tables with iptables-save.
func reading(t *testing.T, f *ruleset.Fake, o diffOptions) *kernelState {
	t.Helper()
	r := &kernelReader{restorer: f, seed: o.seed}
	ks, err := r.readSaves(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func writtenNames(t *tableChanges) []string {
	var out []string
	for _, c := range t.write {
		out = append(out, c.name)
	}
	slices.Sort(out)
	return out
}

func TestDiffAgainstMemoryWritesOnlyWhatChanged(t *testing.T) {
	o := testDiffOptions()
	w := diffWorld(t)
	r := NewRenderer(testOptions())
	ks := remembering(r.Render(w.Snapshot()), o, true)

	// svc2 gains an endpoint: its KUBE-SVC chain and the new KUBE-SEP change;
	// KUBE-SERVICES does not.
	w.ApplyService(svc2(), pt.Endpoint("10.180.0.3"), pt.Endpoint("10.180.0.4"))
	g := r.Render(w.Snapshot())
	ch := diff(ks, g, o)
	chains := r.state.port(spn("ns2", "svc2")).chains
	nat := ch.table("nat")
	got := writtenNames(nat)
	if len(got) != 2 || !slices.Contains(got, chains.Cluster) || !strings.HasPrefix(got[0], "KUBE-SEP-") {
		t.Errorf("nat writes %v, want %s and the new endpoint chain", got, chains.Cluster)
	}
	if w := writtenNames(ch.table("filter")); len(w) != 0 {
		t.Errorf("filter writes %v, want nothing", w)
	}
	if len(nat.edits)+len(nat.deletes) != 0 || ch.full {
		t.Errorf("partial diff edits %q, deletes %q, full %v", nat.edits, nat.deletes, ch.full)
	}
}

func TestDiffAgainstATableReadBackComparesSavedForms(t *testing.T) {
	o := testDiffOptions()
	fake := ruleset.NewFake(ruleset.FakeOptions{})
	g := NewRenderer(testOptions()).Render(diffWorld(t).Snapshot())
	if err := fake.Restore(t.Context(), g.Bytes()); err != nil {
		t.Fatal(err)
	}
	// One endpoint chain differs in the kernel.
	sep := g.table("nat").chains[len(g.table("nat").chains)-1].name
	if err := fake.Restore(t.Context(), []byte("*nat\n-A "+sep+" -j RETURN\nCOMMIT\n")); err != nil {
		t.Fatal(err)
	}
	ch := diff(reading(t, fake, o), g, o)
	if got := writtenNames(ch.table("nat")); !slices.Contains(got, sep) || slices.ContainsFunc(got, isRenderedOtherThan(g, sep)) {
		t.Errorf("nat writes %v, want %s and no other rendered chain", got, sep)
	}
	for i, c := range ch.table("nat").rendered {
		if c.name != sep && ch.table("nat").saved[i] == 0 {
			t.Errorf("no saved form recorded for %s, which was compared", c.name)
		}
	}
}

// isRenderedOtherThan matches rendered chains but one.
func isRenderedOtherThan(g *Rendering, but string) func(string) bool {
	return func(name string) bool {
		return name != but && g.table("nat").declares(name)
	}
}

func TestFullDiffAddsMissingJumpsAndCanaries(t *testing.T) {
	o := testDiffOptions()
	g := NewRenderer(testOptions()).Render(diffWorld(t).Snapshot())
	fake := ruleset.NewFake(ruleset.FakeOptions{})
	// The nat jumps and canary are in place, the filter ones are not;
	// kubelet's KUBE-FIREWALL exists.
	seed := "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-POSTROUTING - [0:0]\n:KUBE-PROXY-CANARY - [0:0]\n"
	for _, j := range netfilter.IPTablesJumpRules() {
		if j.Table == "nat" {
			seed += strings.Replace(j.InsertLine(), " 1 ", " ", 1) + "\n"
		}
	}
	seed += "COMMIT\n*filter\n:KUBE-FIREWALL - [0:0]\nCOMMIT\n"
	if err := fake.Restore(t.Context(), []byte(strings.ReplaceAll(seed, "-I ", "-A "))); err != nil {
		t.Fatal(err)
	}
	ch := diff(reading(t, fake, o), g, o)
	var wantFilter []string
	for _, j := range netfilter.IPTablesJumpRules() {
		if j.Table == "filter" {
			wantFilter = append(wantFilter, j.InsertLine())
		}
	}
	if got := ch.table("filter").edits; !slices.Equal(got, wantFilter) {
		t.Errorf("filter inserts %q, want %q", got, wantFilter)
	}
	if got := ch.table("nat").edits; len(got) != 0 {
		t.Errorf("nat inserts %q, want none (the jumps are there)", got)
	}
	filter := writtenNames(ch.table("filter"))
	if slices.Contains(filter, netfilter.FirewallChain) {
		t.Errorf("kubelet's existing %s declared (flushed)", netfilter.FirewallChain)
	}
	for table, want := range map[string]bool{"mangle": true, "filter": true, "nat": false} {
		if got := slices.Contains(writtenNames(ch.table(table)), netfilter.CanaryChain); got != want {
			t.Errorf("%s canary declared: %v, want %v", table, got, want)
		}
	}
}

func TestDiffDeletesStaleChainsNotActive(t *testing.T) {
	o := testDiffOptions()
	w := diffWorld(t)
	r := NewRenderer(testOptions())
	ks := remembering(r.Render(w.Snapshot()), o, true)
	svc2Chain := r.state.port(spn("ns2", "svc2")).chains.Cluster
	svc1 := r.state.port(spn("ns1", "svc1")).chains.Cluster
	w.Delete(svc2())
	// The kernel state also knows a leftover chain, and names an active one.
	ks.stale = []string{"KUBE-SVC-LEFTOVER0000000", svc1}
	ch := diff(ks, r.Render(w.Snapshot()), o)
	nat := ch.table("nat")
	if !slices.Contains(nat.deletes, svc2Chain) || !slices.Contains(nat.deletes, "KUBE-SVC-LEFTOVER0000000") {
		t.Errorf("deletes %v, want %s and the leftover", nat.deletes, svc2Chain)
	}
	if slices.Contains(nat.deletes, svc1) || !slices.IsSorted(nat.deletes) {
		t.Errorf("deletes %v: active %s deleted, or not sorted", nat.deletes, svc1)
	}
	for _, d := range nat.deletes {
		if !slices.Contains(writtenNames(nat), d) {
			t.Errorf("%s deleted without being flushed first", d)
		}
	}
}

func TestDiffEditsLongTopLevelChainsKnownByRule(t *testing.T) {
	o := testDiffOptions()
	w := newWorld(t)
	for i := range 80 {
		w.ApplyService(pt.Service("ns", fmt.Sprintf("s%02d", i), pt.ClusterIP(fmt.Sprintf("172.30.1.%d", i+1))), pt.Endpoint(fmt.Sprintf("10.1.0.%d", i+1)))
	}
	r := NewRenderer(testOptions())
	g := r.Render(w.Snapshot())
	partial, full := remembering(g, o, true), remembering(g, o, false)
	w.ApplyService(pt.Service("ns", "s99", pt.ClusterIP("172.30.2.1")), pt.Endpoint("10.2.0.1"))
	g = r.Render(w.Snapshot())

	nat := diff(partial, g, o).table("nat")
	if slices.Contains(writtenNames(nat), netfilter.ServicesChain) || len(nat.edits) != 1 || !strings.HasPrefix(nat.edits[0], "-I KUBE-SERVICES ") {
		t.Errorf("with rules known: writes %v, edits %q; want one insertion into KUBE-SERVICES", writtenNames(nat), nat.edits)
	}
	nat = diff(full, g, o).table("nat")
	if !slices.Contains(writtenNames(nat), netfilter.ServicesChain) || len(nat.edits) != 0 {
		t.Errorf("without rules known: writes %v, edits %q; want KUBE-SERVICES rewritten", writtenNames(nat), nat.edits)
	}
}

// TestDiffLeavesTheRenderingAsItWas: the rendering is output only; the
// diff, the restore plan and writing the input do not change it.
func TestDiffLeavesTheRenderingAsItWas(t *testing.T) {
	o := testDiffOptions()
	g := NewRenderer(testOptions()).Render(scaleWorld(t, 50, 3).Snapshot())
	before := bytes.Clone(g.Bytes())
	var names []string
	for _, t := range g.view().tables {
		for _, c := range t.chains {
			names = append(names, t.name+"/"+c.name)
		}
	}
	ks := &kernelState{tables: map[string]*kernelTable{}, stale: []string{"KUBE-SEP-STALE0000000000"}}
	plan := planRestore(diff(ks, g, o), ks, layoutOptions{services: 50, batchChains: 10})
	writeBlocks(new(bytes.Buffer), plan.blocks)
	var after []string
	for _, t := range g.view().tables {
		for _, c := range t.chains {
			after = append(after, t.name+"/"+c.name)
		}
	}
	if !slices.Equal(names, after) || !bytes.Equal(before, g.Bytes()) {
		t.Error("the rendering changed after the diff and the restore plan")
	}
}
