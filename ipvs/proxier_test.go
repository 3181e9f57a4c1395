package ipvs_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/ipvs"
	"github.com/kproxy/kproxy/ipvs/addresses"
	"github.com/kproxy/kproxy/ipvs/ipset"
	"github.com/kproxy/kproxy/ipvs/rules"
	"github.com/kproxy/kproxy/ipvs/vs"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
	pt "github.com/kproxy/kproxy/proxier/proxiertest"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type world struct {
	t     *testing.T
	h     *vs.Fake
	a     *addresses.Fake
	clock *fakeClock
	opts  ipvs.Options
	p     *ipvs.Proxier
	// m is the IPv4 model the proxier syncs from.
	m *model
}

const nodeIP = "192.168.1.10"

func newWorld(t *testing.T, mods ...func(*ipvs.Options)) *world {
	t.Helper()
	w := &world{t: t, h: vs.NewFake(vs.FakeOptions{}), a: addresses.NewFake(addrs("127.0.0.1", nodeIP)...),
		clock: &fakeClock{now: time.Unix(1_800_000_000, 0)}, m: newModel(t, v1.IPv4Protocol)}
	w.opts = ipvs.Options{Handle: w.h, Addresses: w.a, NodePorts: netfilter.NodePortMatch{All: true},
		TerminationTimeout: 10 * time.Minute, Now: w.clock.Now}
	for _, m := range mods {
		m(&w.opts)
	}
	w.restart()
	return w
}

// restart replaces the proxier, as a new kproxy process would.
func (w *world) restart() {
	p, err := ipvs.New(w.opts)
	if err != nil {
		w.t.Fatal(err)
	}
	w.p = p
}

func (w *world) sync(snap *proxier.Snapshot) proxier.SyncResult {
	w.t.Helper()
	res, err := w.p.Sync(context.Background(), snap)
	if err != nil {
		w.t.Fatalf("Sync: %v", err)
	}
	return res
}

// next sets the model to entries and returns its next snapshot (full the
// first time, then partial); full returns it marked full.
func (w *world) next(entries ...entry) *proxier.Snapshot { return w.m.next(entries...) }
func (w *world) full(entries ...entry) *proxier.Snapshot { return w.m.full(entries...) }

func (w *world) state() []string {
	w.t.Helper()
	s, err := kernelState(w.h)
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

func (w *world) bound() []string {
	w.t.Helper()
	b, err := w.a.Bound()
	if err != nil {
		w.t.Fatal(err)
	}
	return addrStrings(b)
}

// must fails the test on a setup error.
func must(t *testing.T, errs ...error) {
	t.Helper()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

func wantStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func TestSyncFullCreatesAndDeletesOnlyOwned(t *testing.T) {
	w := newWorld(t, func(o *ipvs.Options) { o.ExcludeCIDRs = []netip.Prefix{netip.MustParsePrefix("10.96.200.0/24")} })
	rr := func(k vs.ServiceKey) vs.VirtualServer { return vs.VirtualServer{ServiceKey: k, Scheduler: "rr"} }
	must(t, w.a.EnsureDevice(), w.a.Bind(addr("10.96.5.5")), w.a.Bind(addr("10.96.200.1")),
		w.h.NewVirtualServer(rr(vsKey(vs.TCP, "10.0.0.99", 80))),   // foreign: not ours
		w.h.NewVirtualServer(rr(vsKey(vs.TCP, nodeIP, 22))),        // foreign: node IP, not a NodePort
		w.h.NewVirtualServer(rr(vsKey(vs.TCP, nodeIP, 30999))),     // stale NodePort: ours
		w.h.NewVirtualServer(rr(vsKey(vs.UDP, "10.96.5.5", 53))),   // stale, on kube-ipvs0: ours
		w.h.NewVirtualServer(rr(vsKey(vs.TCP, "10.96.200.1", 80))), // excluded
		w.h.NewVirtualServer(rr(vsKey(vs.TCP, "fd00::1", 30999))),  // other family
		w.h.NewVirtualServer(rr(vsKey(vs.TCP, "10.96.0.1", 80))),   // desired, exists without destinations
	)
	res := w.sync(w.next(e(svc("a", "10.96.0.1", pt.NodePort(30080)), ep("10.244.1.1"))))
	wantStrings(t, "kernel", w.state(), []string{
		"TCP/10.0.0.99:80 rr",
		"TCP/10.96.0.1:80 rr -> 10.244.1.1:8080 w1",
		"TCP/10.96.200.1:80 rr",
		"TCP/192.168.1.10:22 rr",
		"TCP/192.168.1.10:30080 rr -> 10.244.1.1:8080 w1",
		"TCP/[fd00::1]:30999 rr",
	})
	wantStrings(t, "kube-ipvs0", w.bound(), []string{"10.96.0.1"})
	if !res.Full || res.Rules != nil {
		t.Errorf("result = %+v, want full, with no iptables rules counted (no Netfilter)", res)
	}
	if c := w.p.Counts(); c != (ipvs.Counts{VirtualServers: 2, BoundAddresses: 1}) {
		t.Errorf("Counts = %+v, want 2 virtual servers and 1 address", c)
	}
}

func TestSyncFullFixesDrift(t *testing.T) {
	w := newWorld(t)
	snap := w.next(e(svc("a", "10.96.0.1", pt.Affinity(300)), ep("10.244.1.1"), ep("10.244.1.2")))
	w.sync(snap)
	k := vsKey(vs.TCP, "10.96.0.1", 80)
	must(t, w.h.UpdateVirtualServer(vs.VirtualServer{ServiceKey: k, Scheduler: "wrr"}),
		w.h.UpdateDestination(k, dest("10.244.1.1", 8080, 5)),
		w.h.DelDestination(k, dest("10.244.1.2", 8080, 1).DestKey),
		w.h.NewDestination(k, dest("10.244.7.7", 8080, 1)))
	w.sync(snap)
	wantStrings(t, "kernel", w.state(), []string{"TCP/10.96.0.1:80 rr flags=0x1 timeout=300 -> 10.244.1.1:8080 w1 -> 10.244.1.2:8080 w1"})
	if st := w.p.LastStats(); st.Updated != 1 || st.DestsUpdated != 1 || st.DestsAdded != 1 || st.DestsRemoved != 1 {
		t.Errorf("stats = %+v, want one of each fix", st)
	}
}

// manyServices is n ClusterIP services 10.96.0.<i> plus one NodePort service "np".
func manyServices(n int) []entry {
	var out []entry
	for i := 1; i <= n; i++ {
		out = append(out, e(svc(fmt.Sprintf("s%02d", i), netip.AddrFrom4([4]byte{10, 96, 0, byte(i)}).String()),
			ep(netip.AddrFrom4([4]byte{10, 244, 0, byte(i)}).String())))
	}
	return append(out, e(svc("np", "10.96.1.1", pt.NodePort(30080)), ep("10.244.1.1")))
}

func TestPartialSyncTouchesOnlyChangedService(t *testing.T) {
	w := newWorld(t)
	entries := manyServices(40)
	w.sync(w.next(entries...))
	before := w.state()

	// One more endpoint for the NodePort service.
	np := entries[len(entries)-1]
	snap := w.next(append(entries[:len(entries)-1:len(entries)-1], e(np.svc, ep("10.244.1.1"), ep("10.244.1.2")))...)
	w.h.ResetCalls()
	addrCalls := w.a.Calls()
	res := w.sync(snap)
	if res.Full {
		t.Errorf("partial sync reported Full")
	}
	want := map[string]int{"GetVirtualServer": 2, "ListDestinations": 2, "NewDestination": 2}
	if got := w.h.Calls(); !mapsEqual(got, want) {
		t.Errorf("handle calls = %v, want %v (no listing, only the changed service's two virtual servers)", got, want)
	}
	if got := w.a.Calls(); !mapsEqual(got, addrCalls) {
		t.Errorf("address calls changed from %v to %v; a partial sync needs none", addrCalls, got)
	}
	after := w.state()
	changed := 0
	for i := range after {
		if after[i] != before[i] {
			changed++
		}
	}
	if changed != 2 || !slices.Contains(after, "TCP/192.168.1.10:30080 rr -> 10.244.1.1:8080 w1 -> 10.244.1.2:8080 w1") {
		t.Errorf("%d virtual servers changed, want the 2 of np:\n%q", changed, after)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestPartialSyncRemovesAndMovesServers(t *testing.T) {
	a := e(svc("a", "10.96.0.1"), ep("10.244.1.1"))
	b := e(svc("b", "10.96.0.2", pt.ExternalIPs("203.0.113.1")), ep("10.244.1.2"))
	tests := []struct {
		name      string
		next      []entry
		want      []string
		wantBound []string
	}{{
		name:      "deleted service",
		next:      []entry{a},
		want:      []string{"TCP/10.96.0.1:80 rr -> 10.244.1.1:8080 w1"},
		wantBound: []string{"10.96.0.1"},
	}, {
		name:      "new ClusterIP and no external IP",
		next:      []entry{a, e(svc("b", "10.96.0.3"), ep("10.244.1.2"))},
		want:      []string{"TCP/10.96.0.1:80 rr -> 10.244.1.1:8080 w1", "TCP/10.96.0.3:80 rr -> 10.244.1.2:8080 w1"},
		wantBound: []string{"10.96.0.1", "10.96.0.3"},
	}, {
		name:      "external IP taken over by another changed service",
		next:      []entry{e(svc("a", "10.96.0.1", pt.ExternalIPs("203.0.113.1")), ep("10.244.1.1"))},
		want:      []string{"TCP/10.96.0.1:80 rr -> 10.244.1.1:8080 w1", "TCP/203.0.113.1:80 rr -> 10.244.1.1:8080 w1"},
		wantBound: []string{"10.96.0.1", "203.0.113.1"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			w.sync(w.next(a, b))
			w.sync(w.next(tt.next...))
			wantStrings(t, "kernel", w.state(), tt.want)
			wantStrings(t, "kube-ipvs0", w.bound(), tt.wantBound)
		})
	}
}

func TestSharedVirtualServerGoesToFirstServiceAndStays(t *testing.T) {
	w := newWorld(t)
	a := e(svc("a", "10.96.0.1", pt.ExternalIPs("203.0.113.1")), ep("10.244.1.1"))
	b := e(svc("b", "10.96.0.2", pt.ExternalIPs("203.0.113.1")), ep("10.244.1.2"))
	w.sync(w.next(a, b))
	b2 := e(svc("b", "10.96.0.2", pt.ExternalIPs("203.0.113.1")), ep("10.244.1.3"))
	w.sync(w.next(a, b2))
	wantStrings(t, "kernel", w.state(), []string{
		"TCP/10.96.0.1:80 rr -> 10.244.1.1:8080 w1",
		"TCP/10.96.0.2:80 rr -> 10.244.1.3:8080 w1",
		"TCP/203.0.113.1:80 rr -> 10.244.1.1:8080 w1",
	})
}

func TestSharedVirtualServerIsTakenOverWhenItsOwnerGoes(t *testing.T) {
	w := newWorld(t)
	a := e(svc("a", "10.96.0.1", pt.ExternalIPs("203.0.113.1")), ep("10.244.1.1"))
	b := e(svc("b", "10.96.0.2", pt.ExternalIPs("203.0.113.1")), ep("10.244.1.2"))
	w.sync(w.next(a, b))
	w.sync(w.next(b))
	wantStrings(t, "kernel", w.state(), []string{
		"TCP/10.96.0.2:80 rr -> 10.244.1.2:8080 w1",
		"TCP/203.0.113.1:80 rr -> 10.244.1.2:8080 w1",
	})
	wantStrings(t, "kube-ipvs0", w.bound(), []string{"10.96.0.2", "203.0.113.1"})
}

func TestSyncHealsPartialAfterExternalDeletion(t *testing.T) {
	w := newWorld(t)
	a := e(svc("a", "10.96.0.1"), ep("10.244.1.1"))
	w.sync(w.next(a))
	must(t, w.h.DelVirtualServer(vsKey(vs.TCP, "10.96.0.1", 80)))
	// a partial sync of a (one endpoint more) recreates its virtual server
	w.sync(w.next(e(a.svc, ep("10.244.1.1"), ep("10.244.1.2"))))
	wantStrings(t, "kernel", w.state(), []string{"TCP/10.96.0.1:80 rr -> 10.244.1.1:8080 w1 -> 10.244.1.2:8080 w1"})
}

// TestPartialSnapshotWithoutMemoryIsPlannedFull: whether a sync is full is
// the caller's decision (proxier.Runner), except that a Proxier that has
// not completed a full sync has no memory of the kernel to edit: it plans
// a partial snapshot in full, lists the table and says so.
func TestPartialSnapshotWithoutMemoryIsPlannedFull(t *testing.T) {
	w := newWorld(t, func(o *ipvs.Options) { o.Scheduler = "no-such-scheduler" })
	a := e(svc("a", "10.96.0.1"))
	if _, err := w.p.Sync(context.Background(), w.next(a)); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("Sync error = %v, want ENOENT from the unknown scheduler", err)
	}
	w.opts.Scheduler = "rr"
	w.restart()
	w.h.ResetCalls()
	if res := w.sync(w.next(a)); !res.Full {
		t.Errorf("first sync of a new Proxier: result %+v, want Full", res)
	}
	if w.h.Calls()["ListVirtualServers"] != 1 {
		t.Errorf("the first sync did not list the kernel table: calls %v", w.h.Calls())
	}
	w.h.ResetCalls()
	if res := w.sync(w.next(a)); res.Full || w.h.Calls()["ListVirtualServers"] != 0 {
		t.Errorf("second partial sync: result %+v, calls %v; want partial, no listing", res, w.h.Calls())
	}
}

// TestFailedPartialSyncKeepsTheLastSuccessfulMemory: a partial sync that
// fails takes back its edits of the Proxier's memory, so what it remembers
// is what the last successful sync programmed, and it decides nothing
// about the next sync (the Runner makes that one full).
func TestFailedPartialSyncKeepsTheLastSuccessfulMemory(t *testing.T) {
	sets := ipset.NewFake()
	w := newWorld(t, func(o *ipvs.Options) {
		o.Netfilter = &ipvs.NetfilterOptions{IPSet: sets, Restorer: &countingRestorer{}, Rules: rules.Options{MasqueradeMark: mark}}
	})
	a := e(svc("a", "10.96.0.1"), ep("10.244.1.1"))
	b := e(svc("b", "10.96.0.2"), ep("10.244.1.2"))
	w.sync(w.next(a))
	sets.FailRestore = errors.New("ipset: boom")
	if _, err := w.p.Sync(context.Background(), w.next(a, b)); err == nil {
		t.Fatal("Sync succeeded although ipset restore failed")
	}
	if c := w.p.Counts(); c != (ipvs.Counts{VirtualServers: 1, BoundAddresses: 1}) {
		t.Errorf("Counts after the failed sync = %+v, want the last successful sync's (1, 1)", c)
	}
	res := w.sync(w.full(a, b)) // the Runner's next sync after a failure is full
	wantStrings(t, "kernel", w.state(), []string{"TCP/10.96.0.1:80 rr -> 10.244.1.1:8080 w1", "TCP/10.96.0.2:80 rr -> 10.244.1.2:8080 w1"})
	if !res.Full || w.p.Counts() != (ipvs.Counts{VirtualServers: 2, BoundAddresses: 2}) {
		t.Errorf("full sync after the failure: %+v, counts %+v", res, w.p.Counts())
	}
}

func TestNewRequiresSeams(t *testing.T) {
	if _, err := ipvs.New(ipvs.Options{Handle: vs.NewFake(vs.FakeOptions{})}); err == nil {
		t.Error("New without Addresses succeeded")
	}
}
