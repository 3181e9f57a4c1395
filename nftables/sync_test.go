package nftables

import (
	"context"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/knftables"

	"github.com/kproxy/kproxy/proxier/metrics"
	. "github.com/kproxy/kproxy/proxier/proxiertest"
	"github.com/kproxy/kproxy/test/nftlisting"
)

// txLines is a transaction's non-empty lines.
func txLines(tx string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(tx), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

func TestPartialSyncSendsOnlyTheChangedService(t *testing.T) {
	e := newTestEnv(t, v1.IPv4Protocol)
	applyOverallIPv4(e.world)
	e.sync()
	svc4 := Service("ns4", "svc4", ClusterIP("172.30.0.44"), ExternalIPs("192.168.99.33"))
	e.world.Apply(SliceFor(svc4, Endpoint("10.180.0.4", OnNode("other-node")),
		Endpoint("10.180.0.5", OnNode(testNodeName)), Endpoint("10.180.0.6", OnNode(testNodeName))))
	res := e.sync()
	want := []string{
		"add chain ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80",
		"flush chain ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80",
		"add rule ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80 meta l4proto tcp dnat ip addr . port to numgen random mod 3 map { 0 : 10.180.0.4 . 80 , 1 : 10.180.0.5 . 80 , 2 : 10.180.0.6 . 80 }",
		"add element ip kube-proxy hairpin-connections { 10.180.0.6 . 10.180.0.6 . tcp . 80 }",
	}
	if got := txLines(e.nft.last()); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("partial transaction:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if res.Full || res.RestoreBytes != len(e.nft.last()) {
		t.Errorf("result %+v, want partial with %d bytes", res, len(e.nft.last()))
	}
}

func TestPartialSyncElementDeltas(t *testing.T) {
	e := newTestEnv(t, v1.IPv4Protocol)
	applyOverallIPv4(e.world)
	e.sync()
	// svc3 loses its only endpoint: its NodePort and ClusterIP now reject
	// (the hairpin element stays: svc5 uses the same endpoint).
	e.world.Apply(SliceFor(Service("ns3", "svc3")))
	e.sync()
	want := []string{
		"flush chain ip kube-proxy external-4AT6LBPK-ns3/svc3/tcp/p80",
		"flush chain ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80",
		"delete element ip kube-proxy service-ips { 172.30.0.43 . tcp . 80 }",
		"delete element ip kube-proxy service-nodeports { tcp . 3003 }",
		`add element ip kube-proxy no-endpoint-services { 172.30.0.43 . tcp . 80 comment "ns3/svc3:p80" : goto reject-chain }`,
		`add element ip kube-proxy no-endpoint-nodeports { tcp . 3003 comment "ns3/svc3:p80" : goto reject-chain }`,
	}
	if got := txLines(e.nft.last()); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("partial transaction:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A hairpin element two services share stays until neither needs it.
func TestSharedElementKeptWhileContributed(t *testing.T) {
	e := newTestEnv(t, v1.IPv4Protocol)
	applyOverallIPv4(e.world) // svc3 and svc5 both use 10.180.0.3:80 on this node
	e.sync()
	e.world.Delete(Service("ns3", "svc3"))
	e.sync()
	if strings.Contains(e.nft.last(), "hairpin-connections") {
		t.Errorf("hairpin element of a shared endpoint deleted:\n%s", e.nft.last())
	}
	e.world.Delete(Service("ns5", "svc5"))
	e.sync()
	if !strings.Contains(e.nft.last(), "delete element ip kube-proxy hairpin-connections { 10.180.0.3 . 10.180.0.3 . tcp . 80 }") {
		t.Errorf("hairpin element not deleted with its last service:\n%s", e.nft.last())
	}
}

func TestStaleChainsFlushedThenDeletedASecondLater(t *testing.T) {
	e := newTestEnv(t, v1.IPv4Protocol)
	applyOverallIPv4(e.world)
	e.sync()
	const chain = "service-ULMVA6XW-ns1/svc1/tcp/p80"
	e.world.Delete(Service("ns1", "svc1"))
	e.sync()
	if !strings.Contains(e.nft.last(), "flush chain ip kube-proxy "+chain) || strings.Contains(e.nft.last(), "delete chain") {
		t.Fatalf("removal should flush, not delete:\n%s", e.nft.last())
	}
	if e.nft.Table.Chains[chain] == nil {
		t.Fatalf("chain deleted in the sync that removed its elements")
	}
	e.clock.advance(500 * time.Millisecond)
	e.world.Apply(SliceFor(Service("ns6", "svc6"), Endpoint("10.180.0.9")))
	e.sync()
	if e.nft.Table.Chains[chain] == nil {
		t.Fatalf("chain deleted before a second passed")
	}
	e.clock.advance(600 * time.Millisecond)
	n := len(e.nft.txs)
	e.sync() // nothing changed: only the stale deletion runs
	if len(e.nft.txs) != n+1 || txLines(e.nft.txs[n])[0] != "delete chain ip kube-proxy "+chain {
		t.Fatalf("want one deletion transaction, got %q", e.nft.txs[n:])
	}
	if e.nft.Table.Chains[chain] != nil {
		t.Errorf("stale chain still there")
	}
}

func TestAffinitySetsDeletedAtOnce(t *testing.T) {
	e := newTestEnv(t, v1.IPv4Protocol)
	applyOverallIPv4(e.world)
	e.sync()
	const set = "affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80"
	e.world.Apply(Service("ns5", "svc5", ClusterIP("172.30.0.45"), Port("p80", v1.ProtocolTCP, 80), NodePort(3002),
		LoadBalancer("5.6.7.8"), SourceRanges("203.0.113.0/25")))
	e.sync()
	if !strings.Contains(e.nft.last(), "delete set ip kube-proxy "+set) || e.nft.Table.Sets[set] != nil {
		t.Errorf("affinity set not deleted:\n%s", e.nft.last())
	}
}

// A restarted kproxy (or one replacing upstream) finds the old table: a full
// sync lists it once and retires what nothing renders any more.
func TestRestartOverExistingTable(t *testing.T) {
	e := newTestEnv(t, v1.IPv4Protocol)
	applyOverallIPv4(e.world)
	e.sync()
	before := e.nft.Dump()
	opts := e.p.table
	p2, err := New(Options{NFT: e.nft, MasqueradeMark: opts.masqMark, NodePortIPs: opts.nodePortIPs,
		LocalDetector: localDetector4(), ServiceCIDRs: opts.serviceCIDRs, Now: e.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	e.p = p2
	e.world.Delete(Service("ns5", "svc5"))
	e.sync() // partial snapshot, but a new Proxier syncs fully first
	tx := e.nft.last()
	for _, want := range []string{"add table ip kube-proxy", "flush chain ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80",
		"flush chain ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80",
		"delete set ip kube-proxy affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80"} {
		if !strings.Contains(tx, want) {
			t.Errorf("restart transaction lacks %q", want)
		}
	}
	e.clock.advance(2 * time.Second)
	e.sync()
	if e.nft.Table.Chains["service-HVFWP5L3-ns5/svc5/tcp/p80"] != nil {
		t.Errorf("stale chain of the previous process not deleted")
	}
	if before == e.nft.Dump() {
		t.Errorf("table unchanged after a service was deleted")
	}
}

func TestFailedTransactionLeavesTableAndMirror(t *testing.T) {
	m := metrics.New()
	e := newTestEnv(t, v1.IPv4Protocol, func(o *Options) { o.Metrics = m })
	applyOverallIPv4(e.world)
	e.sync()
	before, mirror := e.nft.Dump(), e.p.mirror
	e.world.Delete(Service("ns1", "svc1"))
	e.world.Apply(SliceFor(Service("ns6", "svc6"), Endpoint("10.180.0.9")))
	snap := e.world.Snapshot()
	e.nft.fail = 1
	if _, err := e.p.Sync(context.Background(), snap); err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("err = %v, want the wrapped nft error", err)
	}
	if e.nft.Dump() != before || e.p.mirror != mirror || len(mirror.services) != 6 || len(mirror.stale) != 0 {
		t.Fatalf("failed sync changed the table or the mirror")
	}
	if got := counterValue(t, m.NFTablesSyncFailuresTotal, "IPv4"); got != 1 {
		t.Errorf("sync failures = %v, want 1", got)
	}
	// Handing the changes back and retrying partially converges too: the
	// mirror still describes the kernel.
	e.world.Tracker().Requeue(snap)
	e.sync()
	assertSameAsFullSync(t, e)
}

// assertSameAsFullSync compares the table with one full sync of the same
// state by a fresh Proxier on an empty table (after stale chains are gone).
func assertSameAsFullSync(t *testing.T, e *testEnv) {
	t.Helper()
	e.clock.advance(2 * time.Second)
	snap := e.world.Snapshot()
	if _, err := e.p.Sync(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	fresh := knftables.NewFake(knftables.IPv4Family, TableName)
	if e.p.family == v1.IPv6Protocol {
		fresh = knftables.NewFake(knftables.IPv6Family, TableName)
	}
	opts := e.p.table
	p2, _ := New(Options{NFT: fresh, Family: e.p.family, MasqueradeMark: opts.masqMark, NodePortIPs: opts.nodePortIPs,
		LocalDetector: localDetectorFor(e.p.family), ServiceCIDRs: opts.serviceCIDRs, NodeIP: e.p.ctx.nodeIP})
	full := *snap
	full.Full = true
	if _, err := p2.Sync(context.Background(), &full); err != nil {
		t.Fatal(err)
	}
	if got, want := normalizeDump(e.nft.Dump()), normalizeDump(fresh.Dump()); got != want {
		t.Fatalf("partial syncs differ from a full sync:\n%s", nftlisting.LineDiff(want, got))
	}
}

func localDetector4() (d netfilterDetector) { return localDetectorFor(v1.IPv4Protocol) }

// A failed stale-chain deletion is counted and makes the sync full; the
// full sync's listing finds the chain again and retires it later.
func TestFailedStaleDeletionMakesTheSyncFull(t *testing.T) {
	m := metrics.New()
	e := newTestEnv(t, v1.IPv4Protocol, func(o *Options) { o.Metrics = m })
	applyOverallIPv4(e.world)
	e.sync()
	const chain = "service-ULMVA6XW-ns1/svc1/tcp/p80"
	e.world.Delete(Service("ns1", "svc1"))
	e.sync()
	e.clock.advance(2 * time.Second)
	e.nft.fail = 1 // the deletion transaction
	res := e.sync()
	if !res.Full || counterValue(t, m.NFTablesCleanupFailuresTotal, "IPv4") != 1 ||
		counterValue(t, m.NFTablesSyncFailuresTotal, "IPv4") != 0 {
		t.Fatalf("result %+v; want a full sync and one cleanup failure", res)
	}
	if !strings.Contains(e.nft.last(), "flush chain ip kube-proxy "+chain) {
		t.Errorf("full sync did not re-flush the stale chain it listed")
	}
	e.clock.advance(2 * time.Second)
	e.sync()
	if e.nft.Table.Chains[chain] != nil {
		t.Errorf("stale chain never deleted")
	}
}

// --once runs no later sync: RetireStaleChains deletes what the sync
// flushed once it is due, and does nothing when nothing is stale.
func TestRetireStaleChains(t *testing.T) {
	e := newTestEnv(t, v1.IPv4Protocol)
	applyOverallIPv4(e.world)
	e.sync()
	n := len(e.nft.txs)
	if err := e.p.RetireStaleChains(context.Background()); err != nil || len(e.nft.txs) != n {
		t.Fatalf("nothing stale: err %v, %d transactions run", err, len(e.nft.txs)-n)
	}
	const chain = "service-ULMVA6XW-ns1/svc1/tcp/p80"
	e.world.Delete(Service("ns1", "svc1"))
	e.sync()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.p.RetireStaleChains(ctx); err == nil || e.nft.Table.Chains[chain] == nil {
		t.Fatalf("a chain flushed just now must wait for its second: err %v", err)
	}
	e.clock.advance(1100 * time.Millisecond)
	if err := e.p.RetireStaleChains(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e.nft.Table.Chains[chain] != nil || len(e.p.mirror.stale) != 0 {
		t.Errorf("stale chain not retired")
	}
}
