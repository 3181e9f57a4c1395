package ipvs_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"

	"github.com/kproxy/kproxy/ipvs"
	"github.com/kproxy/kproxy/ipvs/ipset"
	"github.com/kproxy/kproxy/ipvs/rules"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
	pt "github.com/kproxy/kproxy/proxier/proxiertest"
)

// countingRestorer is a netfilter.Restorer and ChainLister that keeps every
// input and the last one as "rules" lines (jump insertions and the canary
// declarations full syncs add left out), counts Save, ListChain and Restore
// calls and the restores that carried the canaries, can fail the next
// Restore, and whose Save returns saved[table] (its listings find nothing).
type countingRestorer struct {
	saves, lists, restores, canaries int
	saved                            map[string]string
	inputs                           []string
	last                             string
	fail, failSave                   error
}

func (r *countingRestorer) Restore(_ context.Context, data []byte) error {
	r.restores++
	if err := r.fail; err != nil {
		r.fail = nil
		return err
	}
	r.inputs = append(r.inputs, string(data))
	mangle := "*mangle\n:" + netfilter.CanaryChain + " - [0:0]\nCOMMIT\n"
	text, found := strings.CutPrefix(string(data), mangle)
	if found {
		r.canaries++
	}
	var b strings.Builder
	for l := range strings.Lines(text) {
		if !strings.HasPrefix(l, "-I ") && l != ":"+netfilter.CanaryChain+" - [0:0]\n" {
			b.WriteString(l)
		}
	}
	r.last = b.String()
	return nil
}

func (r *countingRestorer) ListChain(context.Context, string, string) ([]byte, error) {
	r.lists++
	return nil, nil
}

func (r *countingRestorer) Save(_ context.Context, table string) ([]byte, error) {
	r.saves++
	if err := r.failSave; err != nil {
		r.failSave = nil
		return nil, err
	}
	return []byte(r.saved[table]), nil
}

// recordingIPSet is an ipset.Fake that keeps every restore's script.
type recordingIPSet struct {
	*ipset.Fake
	scripts []string
}

func (r *recordingIPSet) Restore(ctx context.Context, b *ipset.Batch) error {
	r.scripts = append(r.scripts, b.Script())
	return r.Fake.Restore(ctx, b)
}

// netfilterWorld is a world whose proxier also writes ipsets and rules.
type netfilterWorld struct {
	*world
	sets *recordingIPSet
	ipt  *countingRestorer
}

func newNetfilterWorld(t *testing.T, mods ...func(*ipvs.Options)) *netfilterWorld {
	nw := &netfilterWorld{sets: &recordingIPSet{Fake: ipset.NewFake()}, ipt: &countingRestorer{}}
	nw.world = newWorld(t, append([]func(*ipvs.Options){func(o *ipvs.Options) {
		o.Netfilter = &ipvs.NetfilterOptions{IPSet: nw.sets, Restorer: nw.ipt, NodeIP: addr(nodeIP),
			Rules: rules.Options{MasqueradeMark: mark}}
	}}, mods...)...)
	return nw
}

// calls is what one sync asked of ipset and iptables.
type calls struct {
	ipsetScripts        []string
	ipsetLists          int
	iptSaves, iptWrites int
}

// syncCounting runs one sync and reports its ipset and iptables calls.
func (nw *netfilterWorld) syncCounting(snap *proxier.Snapshot) calls {
	nw.t.Helper()
	lists, saves, restores, scripts := nw.sets.Lists, nw.ipt.saves, nw.ipt.restores, len(nw.sets.scripts)
	nw.sync(snap)
	var c calls
	for _, s := range nw.sets.scripts[scripts:] {
		if s != "" {
			c.ipsetScripts = append(c.ipsetScripts, s)
		}
	}
	c.ipsetLists, c.iptSaves, c.iptWrites = nw.sets.Lists-lists, nw.ipt.saves-saves, nw.ipt.restores-restores
	return c
}

// assertSetsMatch checks every set against BuildDesiredSets of snap, and
// the last rules written against rules.Render of it.
func (nw *netfilterWorld) assertSetsMatch(snap *proxier.Snapshot) {
	nw.t.Helper()
	bind := ipvs.BuildDesired(snap, ipvs.BuildOptions{LocalAddresses: addrs("127.0.0.1", nodeIP)}).Bind
	want := ipvs.BuildDesiredSets(snap, ipvs.SetMemberOptions{NodeIP: addr(nodeIP), NodePortIPs: addrs(nodeIP), Bound: bind})
	for _, spec := range ipset.Specs(v1.IPv4Protocol) {
		got, _ := nw.sets.Members(spec.Name)
		if !slices.Equal(got, want.Members[spec.Name]) && len(got)+len(want.Members[spec.Name]) > 0 {
			nw.t.Errorf("%s = %q, want %q", spec.Name, got, want.Members[spec.Name])
		}
	}
	text := string(rules.Render(want.RulesInput(), rules.Options{MasqueradeMark: mark}).Restore(nil))
	if nw.ipt.last != text {
		nw.t.Errorf("rules last written:\n%s\nwant:\n%s", nw.ipt.last, text)
	}
}

func TestPartialSyncRunsNoIPTablesCommandWhenRulesAreUnchanged(t *testing.T) {
	nw := newNetfilterWorld(t)
	a := e(svc("a", "172.30.0.1", pt.NodePort(30080)), ep("10.0.0.1", local()), ep("10.0.1.1"))
	b := e(svc("b", "172.30.0.2"), ep("10.0.1.2"))
	if c := nw.syncCounting(nw.next(a, b)); c.iptSaves != 2 || c.iptWrites != 1 || c.ipsetLists != 1 {
		t.Fatalf("full sync: %+v, want 2 saves, 1 restore, 1 ipset listing", c)
	}
	if nw.ipt.canaries != 1 {
		t.Fatalf("the full sync's restore carried the canary chains %d times, want once", nw.ipt.canaries)
	}

	// A remote endpoint of b changes: only IPVS changes.
	b = e(svc("b", "172.30.0.2"), ep("10.0.1.3"))
	snap := nw.next(a, b)
	if c := nw.syncCounting(snap); c.iptSaves != 0 || c.iptWrites != 0 || c.ipsetLists != 0 || len(c.ipsetScripts) != 0 {
		t.Errorf("partial sync of a remote endpoint change: %+v, want no ipset or iptables command", c)
	}
	if got := nw.state(); !slices.Contains(got, "TCP/172.30.0.2:80 rr -> 10.0.1.3:8080 w1") {
		t.Errorf("IPVS after the partial sync: %q", got)
	}
	nw.assertSetsMatch(snap)

	// A local endpoint of a moves: KUBE-LOOP-BACK changes, the rules do not.
	a = e(svc("a", "172.30.0.1", pt.NodePort(30080)), ep("10.0.0.9", local()), ep("10.0.1.1"))
	snap = nw.next(a, b)
	c := nw.syncCounting(snap)
	wantScript := "del KUBE-LOOP-BACK 10.0.0.1,tcp:8080,10.0.0.1\nadd KUBE-LOOP-BACK 10.0.0.9,tcp:8080,10.0.0.9\n"
	if c.iptSaves != 0 || c.iptWrites != 0 || c.ipsetLists != 0 || !slices.Equal(c.ipsetScripts, []string{wantScript}) {
		t.Errorf("partial sync of a local endpoint change: %+v, want only the ipset script %q", c, wantScript)
	}
	nw.assertSetsMatch(snap)
}

// TestFullSyncsCarryTheCanaries: IPVS mode's full syncs (re)create the
// KUBE-PROXY-CANARY chains the tamper monitor polls, in the same
// iptables-restore as the rules; a partial sync that rewrites the rules
// leaves them alone, as iptables mode does.
func TestFullSyncsCarryTheCanaries(t *testing.T) {
	nw := newNetfilterWorld(t)
	a := e(svc("a", "172.30.0.1"))
	if c := nw.syncCounting(nw.next(a)); c.iptWrites != 1 || nw.ipt.canaries != 1 {
		t.Fatalf("full sync: %d restores, %d with the canaries; want 1 and 1", c.iptWrites, nw.ipt.canaries)
	}
	lb := e(svc("lb", "172.30.0.5", pt.LoadBalancer("198.51.100.5")), ep("10.0.1.5"))
	if c := nw.syncCounting(nw.next(a, lb)); c.iptWrites != 1 || nw.ipt.canaries != 1 {
		t.Errorf("partial sync rewriting the rules: %d restores, canaries written %d times in all; want 1 and still 1",
			c.iptWrites, nw.ipt.canaries)
	}
	if c := nw.syncCounting(nw.full(a, lb)); c.iptWrites != 1 || nw.ipt.canaries != 2 {
		t.Errorf("second full sync: %d restores, canaries written %d times in all; want 1 and 2", c.iptWrites, nw.ipt.canaries)
	}
}

func TestPartialSyncRewritesRulesWhenASetStartsOrStopsBeingEmpty(t *testing.T) {
	nw := newNetfilterWorld(t)
	a := e(svc("a", "172.30.0.1"))
	nw.sync(nw.next(a))
	lb := e(svc("lb", "172.30.0.5", pt.LoadBalancer("198.51.100.5")), ep("10.0.1.5"))
	snap := nw.next(a, lb)
	c := nw.syncCounting(snap)
	if c.iptSaves != 2 || c.iptWrites != 1 || !strings.Contains(nw.ipt.last, "--match-set KUBE-LOAD-BALANCER dst,dst -j KUBE-LOAD-BALANCER") {
		t.Errorf("first load balancer: %+v, rules:\n%s\nwant the jump rules checked and KUBE-LOAD-BALANCER matched", c, nw.ipt.last)
	}
	nw.assertSetsMatch(snap)

	snap = nw.next(a)
	c = nw.syncCounting(snap)
	if c.iptWrites != 1 || strings.Contains(nw.ipt.last, "-j KUBE-LOAD-BALANCER") || c.ipsetLists != 0 {
		t.Errorf("last load balancer deleted: %+v, rules:\n%s\nwant the rules rewritten without it", c, nw.ipt.last)
	}
	nw.assertSetsMatch(snap)
}

func TestPartialSyncIPSetDeltas(t *testing.T) {
	aOpts := []pt.ServiceOption{pt.NodePort(30080), lbLocal("198.51.100.1", 31000), pt.ExternalIPs("203.0.113.1")}
	base := []entry{
		e(svc("a", "172.30.0.1", aOpts...), ep("10.0.0.1", local()), ep("10.0.1.1")),
		e(svc("b", "172.30.0.2"), ep("10.0.0.2", local())),
	}
	// aTwoPorts is Service a with a second port "q", sharing its addresses
	// and health check node port.
	aTwoPorts := e(svc("a", "172.30.0.1", append(slices.Clone(aOpts), pt.PortTo("q", v1.ProtocolTCP, 81, 8080), pt.NodePort(30081))...),
		base[0].eps...)
	tests := []struct {
		name        string
		start, next []entry
		want        string
	}{
		{"service deleted", base, base[1:],
			"del KUBE-CLUSTER-IP 172.30.0.1,tcp:80\ndel KUBE-EXTERNAL-IP-LOCAL 203.0.113.1,tcp:80\n" +
				"del KUBE-HEALTH-CHECK-NODE-PORT 31000\ndel KUBE-LOAD-BALANCER 198.51.100.1,tcp:80\n" +
				"del KUBE-LOAD-BALANCER-LOCAL 198.51.100.1,tcp:80\ndel KUBE-LOOP-BACK 10.0.0.1,tcp:8080,10.0.0.1\n" +
				"del KUBE-NODE-PORT-LOCAL-TCP 30080\ndel KUBE-NODE-PORT-TCP 30080\n" +
				"del KUBE-IPVS-IPS 172.30.0.1\ndel KUBE-IPVS-IPS 198.51.100.1\ndel KUBE-IPVS-IPS 203.0.113.1\n"},
		{"local endpoint removed", base, []entry{base[0], e(svc("b", "172.30.0.2"))},
			"del KUBE-LOOP-BACK 10.0.0.2,tcp:8080,10.0.0.2\n"},
		{"remote endpoint removed", base, []entry{e(base[0].svc, ep("10.0.0.1", local())), base[1]}, ""},
		{"service added", base[1:], base,
			"add KUBE-CLUSTER-IP 172.30.0.1,tcp:80\nadd KUBE-EXTERNAL-IP-LOCAL 203.0.113.1,tcp:80\n" +
				"add KUBE-HEALTH-CHECK-NODE-PORT 31000\nadd KUBE-LOAD-BALANCER 198.51.100.1,tcp:80\n" +
				"add KUBE-LOAD-BALANCER-LOCAL 198.51.100.1,tcp:80\nadd KUBE-LOOP-BACK 10.0.0.1,tcp:8080,10.0.0.1\n" +
				"add KUBE-NODE-PORT-LOCAL-TCP 30080\nadd KUBE-NODE-PORT-TCP 30080\n" +
				"add KUBE-IPVS-IPS 172.30.0.1\nadd KUBE-IPVS-IPS 198.51.100.1\nadd KUBE-IPVS-IPS 203.0.113.1\n"},
		{"port deleted, shared members stay", []entry{aTwoPorts, base[1]}, base,
			"del KUBE-CLUSTER-IP 172.30.0.1,tcp:81\ndel KUBE-EXTERNAL-IP-LOCAL 203.0.113.1,tcp:81\n" +
				"del KUBE-LOAD-BALANCER 198.51.100.1,tcp:81\ndel KUBE-LOAD-BALANCER-LOCAL 198.51.100.1,tcp:81\n" +
				"del KUBE-NODE-PORT-LOCAL-TCP 30081\ndel KUBE-NODE-PORT-TCP 30081\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nw := newNetfilterWorld(t)
			nw.sync(nw.next(tc.start...))
			snap := nw.next(tc.next...)
			c := nw.syncCounting(snap)
			var want []string
			if tc.want != "" {
				want = []string{tc.want}
			}
			if c.ipsetLists != 0 || !slices.Equal(c.ipsetScripts, want) {
				t.Errorf("ipset: %d listings, scripts %q; want none and %q", c.ipsetLists, c.ipsetScripts, want)
			}
			nw.assertSetsMatch(snap)
		})
	}
}

func TestFailedPartialSyncIsFollowedByAFullReconcile(t *testing.T) {
	tests := []struct {
		name string
		fail func(*netfilterWorld)
	}{
		{"ipset restore fails", func(nw *netfilterWorld) { nw.sets.FailRestore = errors.New("ipset: boom") }},
		{"iptables-restore fails", func(nw *netfilterWorld) { nw.ipt.fail = errors.New("iptables-restore: boom") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nw := newNetfilterWorld(t)
			a := e(svc("a", "172.30.0.1"), ep("10.0.0.1", local()))
			nw.sync(nw.next(a))
			// Someone adds a member behind kproxy's back: only a full sync sees it.
			stray := &ipset.Batch{}
			stray.Add("KUBE-CLUSTER-IP", "172.30.9.9,tcp:80")
			if err := nw.sets.Fake.Restore(context.Background(), stray); err != nil {
				t.Fatal(err)
			}

			lb := e(svc("lb", "172.30.0.5", pt.LoadBalancer("198.51.100.5")), ep("10.0.0.5", local()))
			tc.fail(nw)
			if _, err := nw.p.Sync(context.Background(), nw.next(a, lb)); err == nil {
				t.Fatal("Sync succeeded although a netfilter command failed")
			}
			snap2 := nw.next(a, e(svc("lb", "172.30.0.5", pt.LoadBalancer("198.51.100.5")), ep("10.0.0.6", local())))
			c := nw.syncCounting(snap2)
			if c.ipsetLists != 1 || c.iptSaves != 2 || c.iptWrites != 1 {
				t.Errorf("sync after the failure: %+v, want the sets listed, the tables read, the rules written", c)
			}
			nw.assertSetsMatch(snap2)
			if got := nw.state(); !slices.Contains(got, "TCP/198.51.100.5:80 rr -> 10.0.0.6:8080 w1") {
				t.Errorf("IPVS after the full sync: %q", got)
			}
		})
	}
}

// TestRandomPartialSyncsMatchFullState drives random changes through
// partial syncs and checks, after each, that IPVS, the sets and the rules
// are what a full sync of the same snapshot produces.
func TestRandomPartialSyncsMatchFullState(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	nw := newNetfilterWorld(t)
	services := map[string]entry{}
	nw.sync(nw.next())
	for step := range 60 {
		for range 1 + rng.IntN(3) {
			name := fmt.Sprintf("s%d", rng.IntN(6))
			if rng.IntN(4) == 0 {
				delete(services, name)
				continue
			}
			services[name] = randomService(rng, name)
		}
		snap := nw.next(slices.Collect(maps.Values(services))...)
		nw.sync(snap)
		nw.assertSetsMatch(snap)
		assertServersFromClaimants(t, step, nw.state(), snap)
	}
}

// assertServersFromClaimants checks that the kernel holds exactly the
// virtual servers snap wants, each as one of the service ports wanting it
// builds it (a contested one belongs to any of its claimants: which one
// depends on the history of syncs).
func assertServersFromClaimants(t *testing.T, step int, got []string, snap *proxier.Snapshot) {
	t.Helper()
	d := ipvs.BuildDesired(snap, ipvs.BuildOptions{NodePortIPs: addrs(nodeIP), LocalAddresses: addrs("127.0.0.1", nodeIP)})
	candidates := map[string][]string{}
	for _, servers := range d.Servers {
		for _, s := range servers {
			k := s.ServiceKey.String()
			candidates[k] = append(candidates[k], renderServer(s.VirtualServer, s.Destinations))
		}
	}
	for _, line := range got {
		k, _, _ := strings.Cut(line, " ")
		if !slices.Contains(candidates[k], line) {
			t.Fatalf("step %d: kernel has %q, want one of %q", step, line, candidates[k])
		}
		delete(candidates, k)
	}
	if len(candidates) > 0 {
		t.Fatalf("step %d: virtual servers missing from the kernel: %v", step, candidates)
	}
}

// randomService is a valid Service with a random mix of the features
// that fill sets.
func randomService(rng *rand.Rand, name string) entry {
	n := name[1] - '0'
	var opts []pt.ServiceOption
	accessible, lb := false, false
	if rng.IntN(2) == 0 {
		opts, accessible = append(opts, pt.NodePort(30000+int32(n))), true
	}
	if rng.IntN(3) == 0 {
		opts, accessible = append(opts, pt.ExternalIPs("203.0.113.1")), true // shared: contested virtual servers
	}
	if rng.IntN(3) == 0 {
		opts = append(opts, pt.LoadBalancer(fmt.Sprintf("198.51.100.%d", n)), pt.SourceRanges("10.0.0.0/8"))
		accessible, lb = true, true
	}
	if rng.IntN(3) == 0 && accessible {
		opts = append(opts, pt.ExternalLocal())
		if lb {
			opts = append(opts, pt.HealthCheckNodePort(31000))
		}
	}
	var eps []discovery.Endpoint
	for range rng.IntN(3) {
		ip := fmt.Sprintf("10.0.%d.%d", rng.IntN(2), 1+rng.IntN(3)) // repeats across services
		if rng.IntN(2) == 0 {
			eps = append(eps, ep(ip, local()))
		} else {
			eps = append(eps, ep(ip))
		}
	}
	return e(svc(name, fmt.Sprintf("172.30.0.%d", n+1), opts...), eps...)
}
