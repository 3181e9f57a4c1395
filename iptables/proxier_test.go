package iptables_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"

	"github.com/kproxy/kproxy/iptables"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
	pt "github.com/kproxy/kproxy/proxier/proxiertest"
)

// Sync pipeline tests against the in-memory ruleset.Fake, which rejects what
// iptables-restore would reject (jumps to missing chains, deleting referenced chains).

// svcSpec is Service ns/name: a cluster IP, a node port unless 0, one port
// "p80" (TCP 80) and an EndpointSlice with ready endpoints at these IPs.
type svcSpec struct {
	ns, name, clusterIP string
	nodePort            int32
	endpoints           []string
}

func (s svcSpec) objects() (*v1.Service, *discovery.EndpointSlice) {
	opts := []pt.ServiceOption{pt.ClusterIP(s.clusterIP)}
	if s.nodePort != 0 {
		opts = append(opts, pt.NodePort(s.nodePort))
	}
	svc := pt.Service(s.ns, s.name, opts...)
	eps := make([]discovery.Endpoint, len(s.endpoints))
	for i, ip := range s.endpoints {
		eps[i] = pt.Endpoint(ip)
	}
	return svc, pt.SliceFor(svc, eps...)
}

// world is the proxiertest.World a test syncs from, holding svcSpecs.
type world struct {
	*pt.World
	live map[string]svcSpec
}

func newWorld(t *testing.T) *world {
	return &world{World: pt.NewWorld(t, pt.WorldOptions{}), live: map[string]svcSpec{}}
}

// set makes the world hold exactly specs: it applies those that are new or
// differ and deletes the others, as the API server's events would.
func (w *world) set(specs ...svcSpec) *world {
	keep := map[string]bool{}
	for _, s := range specs {
		key := s.ns + "/" + s.name
		keep[key] = true
		if old, ok := w.live[key]; !ok || !reflect.DeepEqual(old, s) {
			svc, slice := s.objects()
			w.Apply(svc, slice)
			w.live[key] = s
		}
	}
	for key, s := range w.live {
		if !keep[key] {
			svc, slice := s.objects()
			w.Delete(svc, slice)
			delete(w.live, key)
		}
	}
	return w
}

// next sets specs and returns the next snapshot: full the first time, then
// partial, naming what changed, as the Tracker's.
func (w *world) next(specs ...svcSpec) *proxier.Snapshot { return w.set(specs...).Snapshot() }

// full sets specs and returns the next snapshot marked full (as the Runner
// marks it after a failure, on ForceFull or hourly).
func (w *world) full(specs ...svcSpec) *proxier.Snapshot { return w.set(specs...).Full() }

var (
	svc1 = svcSpec{"ns1", "svc1", "172.30.0.41", 3001, []string{"10.180.0.1", "10.180.0.2"}}
	svc2 = svcSpec{"ns2", "svc2", "172.30.0.42", 0, []string{"10.180.0.3"}}
)

const (
	svc1Chain = "KUBE-SVC-XPGD46QRK7WJZT7O"
	svc2Chain = "KUBE-SVC-GNZBNJ2PO5MGZ6GT"
	sep1      = "KUBE-SEP-SXIVWICOYRO3J4NJ" // svc1 10.180.0.1:80
	sep2      = "KUBE-SEP-LXVODXWDISEETFEF" // svc1 10.180.0.2:80
)

func newProxier(t *testing.T, fake *ruleset.Fake) *iptables.Proxier {
	t.Helper()
	return newProxierOn(t, fake)
}

func mustSync(t *testing.T, p *iptables.Proxier, snap *proxier.Snapshot) proxier.SyncResult {
	t.Helper()
	res, err := p.Sync(context.Background(), snap)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return res
}

func hasChain(f *ruleset.Fake, table, chain string) bool { return f.Table(table).Chain(chain) != nil }

// jumpCount counts rules in a built-in chain that jump to target.
func jumpCount(f *ruleset.Fake, table, from, target string) int {
	n := 0
	for _, r := range f.Table(table).Chain(from).Rules {
		if r.TargetName() == target {
			n++
		}
	}
	return n
}

func TestSyncFirstIsFullAndInstallsJumpsOnce(t *testing.T) {
	fake := ruleset.NewFake(ruleset.FakeOptions{})
	p := newProxier(t, fake)
	w := newWorld(t).set(svc1)
	w.Snapshot() // the first, full snapshot: p gets a partial one first
	res := mustSync(t, p, w.next(svc1))
	if !res.Full {
		t.Errorf("first sync not full")
	}
	if res.RestoreBytes != len(fake.LastRestore()) || res.RestoreBytes == 0 {
		t.Errorf("RestoreBytes %d, input %d bytes", res.RestoreBytes, len(fake.LastRestore()))
	}
	for range 2 {
		res = mustSync(t, p, w.full(svc1))
	}
	for _, j := range []struct{ table, from, to string }{
		{"nat", "PREROUTING", "KUBE-SERVICES"}, {"nat", "OUTPUT", "KUBE-SERVICES"}, {"nat", "POSTROUTING", "KUBE-POSTROUTING"},
		{"filter", "INPUT", "KUBE-EXTERNAL-SERVICES"}, {"filter", "FORWARD", "KUBE-FORWARD"}, {"filter", "OUTPUT", "KUBE-PROXY-FIREWALL"},
		{"filter", "INPUT", "KUBE-FIREWALL"},
	} {
		if n := jumpCount(fake, j.table, j.from, j.to); n != 1 {
			t.Errorf("%s %s -> %s: %d jump rules after three full syncs, want 1", j.table, j.from, j.to, n)
		}
	}
	for _, table := range []string{"nat", "filter", "mangle"} {
		if !hasChain(fake, table, "KUBE-PROXY-CANARY") {
			t.Errorf("no canary in %s", table)
		}
	}
	if got := fake.RestoreCount(); got != 3 {
		t.Errorf("%d restores for 3 syncs", got)
	}
	// Rule counts cover our chains; the fake's nat table also holds 3 jumps.
	if got, want := res.Rules["nat"], fake.Table("nat").RuleCount()-3; got != want {
		t.Errorf("nat rule count %d, table has %d rules in kube chains", got, want)
	}
}

func TestPartialSyncWritesChangedAndDeletesRemoved(t *testing.T) {
	fake := ruleset.NewFake(ruleset.FakeOptions{})
	p := newProxier(t, fake)
	w := newWorld(t)
	mustSync(t, p, w.next(svc1, svc2))

	// svc1 loses an endpoint, svc2 goes away.
	shrunk := svc1
	shrunk.endpoints = []string{"10.180.0.1"}
	res := mustSync(t, p, w.next(shrunk))
	if res.Full {
		t.Errorf("second sync was full")
	}
	if hasChain(fake, "nat", svc2Chain) || hasChain(fake, "nat", sep2) {
		t.Errorf("stale chains survived a partial sync")
	}
	if !hasChain(fake, "nat", svc1Chain) || !hasChain(fake, "nat", sep1) {
		t.Errorf("live chains deleted")
	}
	in := string(fake.LastRestore())
	if strings.Contains(in, "KUBE-PROXY-CANARY") || strings.Contains(in, "-I ") {
		t.Errorf("partial sync rewrote canaries or jumps:\n%s", in)
	}

	// An unchanged service's chains are not in the input but stay in the table.
	mustSync(t, p, w.next(shrunk, svc2))
	if in := string(fake.LastRestore()); strings.Contains(in, ":"+svc1Chain) {
		t.Errorf("unchanged service rewritten:\n%s", in)
	}
	if !hasChain(fake, "nat", svc1Chain) || !hasChain(fake, "nat", svc2Chain) {
		t.Errorf("chains missing after partial sync")
	}
}

// The runner owns the retry: the sync after a failure is full.
func TestFailedRestoreKeepsRulesAndForcesFullSync(t *testing.T) {
	fake := ruleset.NewFake(ruleset.FakeOptions{})
	w := newWorld(t).set(svc1)
	r := newViaRunner(t, newProxier(t, fake), w)
	r.mustSync(t)
	before := ruleset.FormatSave(fake.Table("nat"))

	fake.FailNextRestore(errors.New("injected"))
	w.set(svc1, svc2)
	if _, err := r.sync(); err == nil {
		t.Fatal("sync succeeded despite failing restore")
	}
	if after := ruleset.FormatSave(fake.Table("nat")); after != before {
		t.Errorf("failed restore changed the table")
	}
	res := r.mustSync(t)
	if !res.Full {
		t.Errorf("sync after a failure was not full")
	}
	if !hasChain(fake, "nat", svc2Chain) {
		t.Errorf("full sync after failure did not write all services")
	}
}

func TestFullSyncDeletesLeftoverChainsAndKeepsForeignRules(t *testing.T) {
	fake := ruleset.NewFake(ruleset.FakeOptions{})
	seed := "*nat\n:KUBE-SVC-LEFTOVER0000000 - [0:0]\n:KUBE-SEP-LEFTOVER0000000 - [0:0]\n:OTHER - [0:0]\n" +
		"-A KUBE-SVC-LEFTOVER0000000 -j KUBE-SEP-LEFTOVER0000000\n-A OTHER -j RETURN\n-A PREROUTING -j OTHER\nCOMMIT\n" +
		"*filter\n:OTHER-F - [0:0]\n-A INPUT -j OTHER-F\nCOMMIT\n"
	if err := fake.Restore(context.Background(), []byte(seed)); err != nil {
		t.Fatal(err)
	}
	p := newProxier(t, fake)
	mustSync(t, p, newWorld(t).next(svc1))
	if hasChain(fake, "nat", "KUBE-SVC-LEFTOVER0000000") || hasChain(fake, "nat", "KUBE-SEP-LEFTOVER0000000") {
		t.Errorf("leftover service chains not deleted")
	}
	if jumpCount(fake, "nat", "PREROUTING", "OTHER") != 1 || jumpCount(fake, "filter", "INPUT", "OTHER-F") != 1 {
		t.Errorf("foreign rules lost")
	}
	if rules := fake.Table("nat").Chain("OTHER").Rules; len(rules) != 1 {
		t.Errorf("foreign chain flushed")
	}
}

func TestCleanupRemovesOursOnly(t *testing.T) {
	fake := ruleset.NewFake(ruleset.FakeOptions{})
	seed := "*nat\n:OTHER - [0:0]\n-A OTHER -j RETURN\n-A POSTROUTING -j OTHER\nCOMMIT\n"
	if err := fake.Restore(context.Background(), []byte(seed)); err != nil {
		t.Fatal(err)
	}
	p := newProxier(t, fake)
	mustSync(t, p, newWorld(t).next(svc1, svc2))
	if _, err := netfilter.CleanupIPTablesMode(context.Background(), fake); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	for table, tb := range fake.Tables() {
		for _, c := range tb.Chains {
			switch {
			case c.Name == "KUBE-MARK-MASQ" || c.Name == "KUBE-FIREWALL" || c.Name == "OTHER":
			case strings.HasPrefix(c.Name, "KUBE-"):
				t.Errorf("%s chain %s survived cleanup", table, c.Name)
			}
			for _, r := range c.Rules {
				if tg := r.TargetName(); strings.HasPrefix(tg, "KUBE-") && tg != "KUBE-FIREWALL" && tg != "KUBE-MARK-MASQ" {
					t.Errorf("%s %s still jumps to %s", table, c.Name, tg)
				}
			}
		}
	}
	if jumpCount(fake, "nat", "POSTROUTING", "OTHER") != 1 {
		t.Errorf("foreign jump removed")
	}
	// Cleaning a clean node does nothing.
	n := fake.RestoreCount()
	if _, err := netfilter.CleanupIPTablesMode(context.Background(), fake); err != nil || fake.RestoreCount() != n {
		t.Errorf("second cleanup: err=%v, restores %d -> %d", err, n, fake.RestoreCount())
	}
}

func TestNewValidatesOptions(t *testing.T) {
	if _, err := iptables.New(iptables.Options{Render: iptables.RenderOptions{MasqueradeMark: "0x4000"}}); err == nil {
		t.Error("New accepted a nil Restorer")
	}
	if _, err := iptables.New(iptables.Options{Restorer: ruleset.NewFake(ruleset.FakeOptions{})}); err == nil {
		t.Error("New accepted an empty mark")
	}
}
