package iptables_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kproxy/kproxy/iptables"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// Sync pipeline tests against the in-memory ruleset.Fake, which rejects what
// iptables-restore would reject (jumps to missing chains, deleting referenced chains).

func portName(ns, name string) proxier.ServicePortName {
	return proxier.ServicePortName{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}, Port: "p80", Protocol: v1.ProtocolTCP}
}

// snapOf builds a snapshot; each service gets a ClusterIP and NodePort and
// the listed endpoint IPs (port 80, ready).
type svcSpec struct {
	ns, name, clusterIP string
	nodePort            int32
	endpoints           []string
}

func snapOf(full bool, changed []string, specs ...svcSpec) *proxier.Snapshot {
	s := &proxier.Snapshot{Family: v1.IPv4Protocol, Full: full,
		Services:  map[proxier.ServicePortName]*proxier.ServicePort{},
		Endpoints: map[proxier.ServicePortName]*proxier.EndpointSet{},
		Changed:   map[proxier.ServicePortName]struct{}{},
	}
	for _, sp := range specs {
		n := portName(sp.ns, sp.name)
		s.Services[n] = &proxier.ServicePort{Name: n, ClusterIP: netip.MustParseAddr(sp.clusterIP), Port: 80,
			Protocol: v1.ProtocolTCP, NodePort: sp.nodePort}
		set := &proxier.EndpointSet{}
		for _, ip := range sp.endpoints {
			e := proxier.Endpoint{IP: netip.MustParseAddr(ip), Port: 80, Ready: true, Serving: true}
			set.All = append(set.All, e)
			set.Cluster = append(set.Cluster, e)
		}
		set.HasAny = len(set.Cluster) > 0
		s.Endpoints[n] = set
	}
	for _, c := range changed {
		ns, name, _ := strings.Cut(c, "/")
		s.Changed[portName(ns, name)] = struct{}{}
	}
	return s
}

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
	res := mustSync(t, p, snapOf(false, nil, svc1))
	if !res.Full {
		t.Errorf("first sync not full")
	}
	if res.RestoreBytes != len(fake.LastRestore()) || res.RestoreBytes == 0 {
		t.Errorf("RestoreBytes %d, input %d bytes", res.RestoreBytes, len(fake.LastRestore()))
	}
	for range 2 {
		res = mustSync(t, p, snapOf(true, nil, svc1))
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
	mustSync(t, p, snapOf(true, nil, svc1, svc2))

	// svc1 loses an endpoint, svc2 goes away.
	shrunk := svc1
	shrunk.endpoints = []string{"10.180.0.1"}
	res := mustSync(t, p, snapOf(false, []string{"ns1/svc1", "ns2/svc2"}, shrunk))
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
	mustSync(t, p, snapOf(false, []string{"ns2/svc2"}, shrunk, svc2))
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
	r := newViaRunner(t, newProxier(t, fake))
	r.mustSync(t, snapOf(true, nil, svc1))
	before := ruleset.FormatSave(fake.Table("nat"))

	fake.FailNextRestore(errors.New("injected"))
	if _, err := r.sync(snapOf(false, []string{"ns2/svc2"}, svc1, svc2)); err == nil {
		t.Fatal("sync succeeded despite failing restore")
	}
	if after := ruleset.FormatSave(fake.Table("nat")); after != before {
		t.Errorf("failed restore changed the table")
	}
	res := r.mustSync(t, snapOf(false, nil, svc1, svc2))
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
	mustSync(t, p, snapOf(false, nil, svc1))
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
	mustSync(t, p, snapOf(true, nil, svc1, svc2))
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
