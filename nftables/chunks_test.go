package nftables

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/nftables/nftnl"
	"github.com/kproxy/kproxy/proxier/metrics"
	. "github.com/kproxy/kproxy/proxier/proxiertest"
)

// serviceChainRE matches a per-service chain name; group 1 is its
// service port ("ns/svc/proto/port").
var serviceChainRE = regexp.MustCompile(`(?:service|local|external|firewall|endpoint)-[A-Z0-9]{8}-([^_\s]+/[^_\s]+/[^_\s]+/[^_\s]*)`)

// chunked makes full syncs write at most n service chains per transaction.
func chunked(n int) func(*Options) { return func(o *Options) { o.FullSyncChunkChains = n } }

// applyRandomWorld adds n random services (every kind, affinity included)
// with their endpoints.
func applyRandomWorld(e *testEnv, fam v1.IPFamily, seed uint64, n int) {
	r := rand.New(rand.NewPCG(seed, 7))
	for i := 0; i < n; i++ {
		svc := randomService(r, fam, i)
		e.world.Apply(svc, randomSlice(r, fam, svc))
	}
}

// assertNoDanglingGotos fails when an element or rule of the Fake's table
// names a chain the table does not hold: what a transaction boundary of a
// chunked full sync must never leave.
func assertNoDanglingGotos(t *testing.T, e *testEnv) {
	t.Helper()
	for _, line := range strings.Split(e.nft.Dump(), "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] != "goto" && f[i] != "jump" {
				continue
			}
			name := strings.Trim(f[i+1], ",}")
			if e.nft.Table.Chains[name] == nil {
				t.Fatalf("%q names missing chain %q", line, name)
			}
		}
	}
}

// A chunked full sync writes the same table as one transaction: the fixed
// part first, then chunks that never split a service port and hold no
// elements, then the elements. With netlink, nothing goes through nft -f:
// the fixed part is a batch too.
func TestChunkedFullSyncWritesTheSameTable(t *testing.T) {
	for _, fam := range []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol} {
		for _, netlink := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/netlink=%v", fam, netlink), func(t *testing.T) {
				testChunkedFullSync(t, fam, netlink)
			})
		}
	}
}

func testChunkedFullSync(t *testing.T, fam v1.IPFamily, netlink bool) {
	one := newTestEnv(t, fam, chunked(-1))
	many := newTestEnv(t, fam, chunked(3))
	var nl *fakeNetlink
	if netlink {
		many, nl = newNetlinkEnv(t, fam, chunked(3))
	}
	for _, e := range []*testEnv{one, many} {
		applyRandomWorld(e, fam, 5, 12)
		e.sync()
	}
	if len(one.nft.txs) != 1 {
		t.Fatalf("unchunked full sync ran %d transactions", len(one.nft.txs))
	}
	assertTable(t, one.nft.Dump(), many.nft.Dump())
	txs := many.nft.txs
	if netlink {
		if len(txs) != 0 {
			t.Fatalf("nft -f ran %d transactions, want none", len(txs))
		}
		txs = nl.batches
	}
	chunks := txs[1 : len(txs)-1]
	if len(chunks) < 3 {
		t.Fatalf("want several chunks of at most 3 chains, got %d transactions", len(txs))
	}
	for i, tx := range chunks {
		names := serviceChainRE.FindAllStringSubmatch(tx, -1)
		ports := map[string]bool{}
		for _, m := range names {
			ports[m[1]] = true
		}
		chains := strings.Count(tx, "add chain ")
		if (chains > 3 && len(ports) > 1) || strings.Contains(tx, "add element") {
			t.Errorf("chunk %d: %d chains of %d service ports (over 3 only for one port), or elements:\n%s",
				i, chains, len(ports), tx)
		}
	}
	if first := txs[0]; serviceChainRE.MatchString(first) || strings.Contains(first, "add element ip kube-proxy service-ips") ||
		strings.Contains(first, "add element ip6 kube-proxy service-ips") {
		t.Errorf("the first transaction should hold only the fixed part of the table:\n%s", first)
	}
	if last := txs[len(txs)-1]; !strings.HasPrefix(last, "flush map") && !strings.HasPrefix(last, "flush set") {
		t.Errorf("the last transaction should start by flushing the maps:\n%.300s", last)
	}
}

// A restart over a big table: chunks rewrite the chains, the last
// transaction retires what nothing renders any more, stale chains go a
// second later, and the result is one full sync of the state. With
// netlink, the table is listed over netlink, or with nft when that fails.
func TestChunkedRestartOverExistingTable(t *testing.T) {
	for _, tc := range []struct {
		name              string
		netlink, listFail bool
	}{{"nft", false, false}, {"netlink", true, false}, {"netlink listing fails", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, v1.IPv4Protocol, chunked(3))
			var nl *fakeNetlink
			if tc.netlink {
				e, nl = newNetlinkEnv(t, v1.IPv4Protocol, chunked(3))
			}
			applyOverallIPv4(e.world)
			applyRandomWorld(e, v1.IPv4Protocol, 9, 10)
			e.sync()
			opts := e.p.table
			p2, err := New(Options{NFT: e.nft, MasqueradeMark: opts.masqMark, NodePortIPs: opts.nodePortIPs, NodeIP: e.p.ctx.nodeIP,
				LocalDetector: localDetector4(), ServiceCIDRs: opts.serviceCIDRs, Now: e.clock.now, FullSyncChunkChains: 3})
			if err != nil {
				t.Fatal(err)
			}
			if tc.netlink {
				p2.netlink = nl
				nl.listFail = tc.listFail
			}
			e.p = p2
			e.world.Delete(Service("ns5", "svc5"))
			n := len(e.nft.txs)
			e.sync()
			txs := e.nft.txs[n:]
			if tc.netlink {
				if nl.lists != 2 {
					t.Errorf("netlink listed the table %d times, want once per full sync (2)", nl.lists)
				}
				txs = append(txs, nl.batches...)
			}
			if len(txs) < 4 {
				t.Fatalf("restart ran %d transactions, want it chunked", len(txs))
			}
			if last := txs[len(txs)-1]; !strings.Contains(last, "flush chain ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80") ||
				!strings.Contains(last, "delete set ip kube-proxy affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80") {
				t.Errorf("the last transaction should retire ns5/svc5:\n%s", last)
			}
			assertNoDanglingGotos(t, e)
			assertSameAsFullSync(t, e)
			if e.nft.Table.Chains["service-HVFWP5L3-ns5/svc5/tcp/p80"] != nil {
				t.Errorf("stale chain not deleted a sync later")
			}
		})
	}
}

// A chunk that fails leaves the mirror as it was and no element pointing
// at a missing chain; the retry converges.
func TestChunkedFullSyncFailingHalfway(t *testing.T) {
	m := metrics.New()
	e := newTestEnv(t, v1.IPv4Protocol, chunked(3), func(o *Options) { o.Metrics = m })
	applyOverallIPv4(e.world)
	e.sync()
	mirror := e.p.mirror
	applyRandomWorld(e, v1.IPv4Protocol, 3, 12)
	e.world.Delete(Service("ns1", "svc1"))
	snap := e.world.Full()
	e.nft.pass, e.nft.fail = 2, 1
	_, err := e.p.Sync(context.Background(), snap)
	if err == nil || !strings.Contains(err.Error(), "injected failure") || !strings.Contains(err.Error(), "transaction 3 of ") {
		t.Fatalf("err = %v, want the third transaction's wrapped nft error", err)
	}
	if e.p.mirror != mirror || len(mirror.services) != 6 {
		t.Fatalf("a failed full sync changed the mirror")
	}
	if got := counterValue(t, m.NFTablesSyncFailuresTotal, "IPv4"); got != 1 {
		t.Errorf("sync failures = %v, want 1", got)
	}
	assertNoDanglingGotos(t, e)
	if _, err := e.p.Sync(context.Background(), e.world.Full()); err != nil {
		t.Fatal(err)
	}
	assertSameAsFullSync(t, e)
}

// An affinity set whose timeout changed is deleted once the chains naming
// it are flushed; a stale chain may name it and only the last transaction
// flushes those, so such a full sync stays one transaction.
func TestChangedAffinityTimeoutKeepsTheFullSyncWhole(t *testing.T) {
	e := newTestEnv(t, v1.IPv4Protocol, chunked(2))
	applyOverallIPv4(e.world)
	e.sync()
	e.world.Apply(Service("ns5", "svc5", ClusterIP("172.30.0.45"), Port("p80", v1.ProtocolTCP, 80), NodePort(3002),
		LoadBalancer("5.6.7.8"), SourceRanges("203.0.113.0/25"), Affinity(600)))
	n := len(e.nft.txs)
	if _, err := e.p.Sync(context.Background(), e.world.Full()); err != nil {
		t.Fatal(err)
	}
	if got := len(e.nft.txs) - n; got != 1 {
		t.Fatalf("full sync re-creating an affinity set ran %d transactions, want 1", got)
	}
	if !strings.Contains(e.nft.last(), "delete set ip kube-proxy affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80") {
		t.Errorf("affinity set not re-created:\n%s", e.nft.last())
	}
	e.clock.advance(2 * time.Second)
	assertSameAsFullSync(t, e)
}

func TestOrdinalNamesTransactions(t *testing.T) {
	for _, tt := range []struct {
		i, n int
		want string
	}{{0, 1, ""}, {0, 3, " 1 of 3"}, {2, 3, " 3 of 3"}} {
		if got := ordinal(tt.i, tt.n); got != tt.want {
			t.Errorf("ordinal(%d, %d) = %q, want %q", tt.i, tt.n, got, tt.want)
		}
	}
}

// A restart over a table whose chains already hold what kproxy renders
// rewrites only the chains that differ (their digests say so): one that
// ends in a rule every packet leaves by (a service chain) is swapped, its
// new rules inserted ahead and its old ones deleted once every chunk is
// in; another (a firewall chain) is flushed and refilled. The table is
// then the same as a full sync that rewrites everything.
func TestRestartRewritesOnlyChangedChains(t *testing.T) {
	e, nl := newNetlinkEnv(t, v1.IPv4Protocol, chunked(3))
	applyOverallIPv4(e.world)
	applyRandomWorld(e, v1.IPv4Protocol, 9, 10)
	e.sync()
	all := digestMirror(t, e, nl)
	const drifted = "firewall-HVFWP5L3-ns5/svc5/tcp/p80"
	const swapped = "service-LAUZTJTB-ns4/svc4/tcp/p80"
	if !slices.Contains(all, drifted) || !slices.Contains(all, swapped) {
		t.Fatalf("the world lacks %s or %s: %q", drifted, swapped, all)
	}
	// Changed behind kproxy's back.
	nl.digests[drifted], nl.digests[swapped] = nftnl.Digest{1}, nftnl.Digest{2}
	restart(t, e, nl, 3)
	batches, txs := len(nl.batches), len(e.nft.txs)
	e.sync()
	if len(e.nft.txs) != txs {
		t.Errorf("restart ran %d nft transactions, want none", len(e.nft.txs)-txs)
	}
	var written, inserted []string
	inserts, deletes := -1, -1
	for i, b := range nl.batches[batches:] {
		for _, line := range strings.Split(b, "\n") {
			if name, ok := strings.CutPrefix(line, "add chain ip kube-proxy "); ok && serviceChainRE.MatchString(name) {
				written = append(written, name)
			}
			if rest, ok := strings.CutPrefix(line, "insert rule ip kube-proxy "); ok {
				inserted, inserts = append(inserted, strings.Fields(rest)[0]), i
			}
			if strings.HasPrefix(line, "delete rule ip kube-proxy "+swapped+" handle ") {
				deletes = i
			}
		}
	}
	if !slices.Equal(written, []string{drifted}) || !slices.Equal(inserted, []string{swapped}) {
		t.Errorf("restart wrote service chains %q and inserted into %q, want only %q and %q", written, inserted, drifted, swapped)
	}
	if deletes != len(nl.batches)-batches-1 || deletes <= inserts {
		t.Errorf("old rules of %s deleted in batch %d, inserted in %d; want the deletion in the last batch", swapped, deletes, inserts)
	}
	assertNoDanglingGotos(t, e)
	assertSameAsFullSync(t, e)
}

// A restart small enough for one nft -f transaction swaps a changed
// service chain in it, and deletes the old rules in a second transaction.
func TestRestartSwapsInOneTransactionThenDeletes(t *testing.T) {
	e, nl := newNetlinkEnv(t, v1.IPv4Protocol)
	applyOverallIPv4(e.world)
	e.sync()
	digestMirror(t, e, nl)
	const swapped = "service-LAUZTJTB-ns4/svc4/tcp/p80"
	nl.digests[swapped] = nftnl.Digest{2}
	restart(t, e, nl, 0)
	batches, txs := len(nl.batches), len(e.nft.txs)
	e.sync()
	if len(e.nft.txs) != txs+1 || len(nl.batches) != batches+1 {
		t.Fatalf("restart ran %d nft transactions and %d batches, want 1 and 1", len(e.nft.txs)-txs, len(nl.batches)-batches)
	}
	tx := e.nft.txs[len(e.nft.txs)-1]
	if !strings.Contains(tx, "insert rule ip kube-proxy "+swapped+" handle ") || strings.Contains(tx, "flush chain ip kube-proxy "+swapped+"\n") {
		t.Errorf("full sync transaction does not swap %s:\n%s", swapped, tx)
	}
	if got := txLines(nl.batches[batches]); len(got) != 1 || !strings.HasPrefix(got[0], "delete rule ip kube-proxy "+swapped+" handle ") {
		t.Errorf("second transaction:\n%s\nwant the old rule's deletion", strings.Join(got, "\n"))
	}
	assertSameAsFullSync(t, e)
}

// digestMirror makes nl's ChainDigests say the kernel holds what e's
// mirror rendered, and returns the chains' names, sorted.
func digestMirror(t *testing.T, e *testEnv, nl *fakeNetlink) []string {
	t.Helper()
	nl.digests = map[string]nftnl.Digest{}
	var all []string
	for _, r := range e.p.mirror.services {
		for _, c := range r.chains {
			d, err := nftnl.RulesDigest(nftnl.IPv4, TableName, c.rules)
			if err != nil {
				t.Fatal(err)
			}
			nl.digests[c.name] = d
			all = append(all, c.name)
		}
	}
	slices.Sort(all)
	return all
}

// restart replaces e's Proxier by a new one over the same table, as a
// restarted kproxy (chunk: its FullSyncChunkChains).
func restart(t *testing.T, e *testEnv, nl *fakeNetlink, chunk int) {
	t.Helper()
	opts := e.p.table
	p2, err := New(Options{NFT: e.nft, MasqueradeMark: opts.masqMark, NodePortIPs: opts.nodePortIPs, NodeIP: e.p.ctx.nodeIP,
		LocalDetector: localDetector4(), ServiceCIDRs: opts.serviceCIDRs, Now: e.clock.now, FullSyncChunkChains: chunk, Netlink: nl})
	if err != nil {
		t.Fatal(err)
	}
	e.p = p2
}
