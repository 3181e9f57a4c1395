package nftables

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/knftables"

	"github.com/kproxy/kproxy/nftables/nftnl"
	"github.com/kproxy/kproxy/proxier/metrics"
	. "github.com/kproxy/kproxy/proxier/proxiertest"
)

// fakeNetlink runs batches on the test's Fake (through recordingNFT, so
// they are recorded too) and can fail the next ones as the kernel would.
type fakeNetlink struct {
	nft     *recordingNFT
	batches []string
	fail    int
	// lists counts ListNames calls; listFail fails them.
	lists    int
	listFail bool
	// digests are what ChainDigests says the kernel's chains hold.
	digests map[string]nftnl.Digest
	// handlesFail fails RuleHandles.
	handlesFail bool
}

func (f *fakeNetlink) ChainDigests(context.Context, nftnl.Family, string) (map[string]nftnl.Digest, error) {
	return f.digests, nil
}

// ListNames lists the Fake's chains and sets, as nftnl.Conn lists the kernel's.
func (f *fakeNetlink) ListNames(ctx context.Context, fam nftnl.Family, table string) (nftnl.Names, error) {
	f.lists++
	if f.listFail {
		return nftnl.Names{}, errors.New("injected listing failure")
	}
	chains, err := f.nft.Fake.List(ctx, "chains")
	if err != nil && !knftables.IsNotFound(err) {
		return nftnl.Names{}, err
	}
	sets, err := f.nft.Fake.List(ctx, "sets")
	if err != nil && !knftables.IsNotFound(err) {
		return nftnl.Names{}, err
	}
	maps, err := f.nft.Fake.List(ctx, "maps")
	if err != nil && !knftables.IsNotFound(err) {
		return nftnl.Names{}, err
	}
	return nftnl.Names{Chains: chains, Sets: append(sets, maps...)}, nil
}

// RuleHandles lists the handles of the Fake's chain, as nftnl.Conn lists
// the kernel's.
func (f *fakeNetlink) RuleHandles(ctx context.Context, _ nftnl.Family, _, chain string) ([]uint64, error) {
	if f.handlesFail {
		return nil, errors.New("injected listing failure")
	}
	rules, err := f.nft.Fake.ListRules(ctx, chain)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, r := range rules {
		out = append(out, uint64(*r.Handle))
	}
	return out, nil
}

func (f *fakeNetlink) Run(ctx context.Context, b *nftnl.Batch) error {
	f.batches = append(f.batches, b.String())
	if f.fail > 0 {
		f.fail--
		return fmt.Errorf("add rule ip kube-proxy x: %w", errors.New("injected failure"))
	}
	return nftnl.Fake{NFT: f.nft.Fake}.Run(ctx, b)
}

func newNetlinkEnv(t *testing.T, fam v1.IPFamily, opts ...func(*Options)) (*testEnv, *fakeNetlink) {
	nl := &fakeNetlink{}
	e := newTestEnv(t, fam, append(opts, func(o *Options) { o.Netlink = nl })...)
	nl.nft = e.nft
	return e, nl
}

// With netlink, full syncs still run through nft -f and partial ones go
// over netlink, as the same operations nft -f would have run.
func TestNetlinkWritesPartialSyncs(t *testing.T) {
	e, nl := newNetlinkEnv(t, v1.IPv4Protocol)
	applyOverallIPv4(e.world)
	e.sync()
	if len(e.nft.txs) != 1 || len(nl.batches) != 0 {
		t.Fatalf("full sync: %d nft transactions, %d batches; want 1, 0", len(e.nft.txs), len(nl.batches))
	}
	// svc4's chain looks up a numgen map: it is swapped (swap.go), its
	// new rule inserted before the old one, which a second batch deletes.
	const chain = "service-LAUZTJTB-ns4/svc4/tcp/p80"
	old, err := nl.RuleHandles(context.Background(), nftnl.IPv4, TableName, chain)
	if err != nil || len(old) != 1 {
		t.Fatalf("rules of %s: %v, %v", chain, old, err)
	}
	h := fmt.Sprint(old[0])
	svc4 := Service("ns4", "svc4", ClusterIP("172.30.0.44"), ExternalIPs("192.168.99.33"))
	e.world.Apply(SliceFor(svc4, Endpoint("10.180.0.4", OnNode("other-node")),
		Endpoint("10.180.0.5", OnNode(testNodeName)), Endpoint("10.180.0.6", OnNode(testNodeName))))
	res := e.sync()
	if len(nl.batches) != 2 || len(e.nft.txs) != 1 {
		t.Fatalf("partial sync: %d nft transactions, %d batches; want 1, 2", len(e.nft.txs), len(nl.batches))
	}
	want := []string{
		"insert rule ip kube-proxy " + chain + " handle " + h + " meta l4proto tcp dnat ip addr . port to numgen random mod 3 map { 0 : 10.180.0.4 . 80 , 1 : 10.180.0.5 . 80 , 2 : 10.180.0.6 . 80 }",
		"add element ip kube-proxy hairpin-connections { 10.180.0.6 . 10.180.0.6 . tcp . 80 }",
	}
	if got := txLines(nl.batches[0]); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("partial batch:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got, want := txLines(nl.batches[1]), "delete rule ip kube-proxy "+chain+" handle "+h; strings.Join(got, "\n") != want {
		t.Errorf("second batch:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
	}
	if res.Full || res.RestoreBytes != len(nl.batches[0])+len(nl.batches[1]) {
		t.Errorf("result %+v, want partial with %d bytes", res, len(nl.batches[0])+len(nl.batches[1]))
	}
	assertSameAsFullSync(t, e)
	// The stale chains of a removed service are deleted over netlink too.
	e.world.Delete(svc4)
	e.sync()
	e.clock.advance(2e9)
	e.world.Apply(SliceFor(svc4))
	e.sync()
	if got := nl.batches[len(nl.batches)-1]; !strings.Contains(got, "delete chain ip kube-proxy service-LAUZTJTB-ns4/svc4/tcp/p80\n") {
		t.Errorf("stale chain deletion batch:\n%s", got)
	}
	if len(e.nft.txs) != 1 {
		t.Errorf("nft -f ran %d transactions, want only the first full sync", len(e.nft.txs))
	}
}

// A failed batch fails the sync, is counted and leaves the table and the
// mirror as they were; the runner's retry (full) goes through nft -f. A
// batch that succeeds resets the count; after netlinkGiveUp failures in a
// row the Proxier stops using netlink.
func TestNetlinkFailureFallsBackToNFT(t *testing.T) {
	e, nl := newNetlinkEnv(t, v1.IPv4Protocol)
	m := metrics.New()
	e.p.metrics = m
	applyOverallIPv4(e.world)
	e.sync()
	endpoint := 100
	change := func() error {
		endpoint++
		e.world.Apply(SliceFor(Service("ns1", "svc1"), Endpoint(fmt.Sprintf("10.180.0.%d", endpoint))))
		_, err := e.p.Sync(context.Background(), e.world.Snapshot())
		return err
	}
	failOnce := func(what string) {
		t.Helper()
		before := e.nft.Fake.Dump()
		nl.fail = 1
		if err := change(); err == nil || !strings.Contains(err.Error(), "injected failure") {
			t.Fatalf("%s: sync error %v, want the injected failure", what, err)
		}
		if e.nft.Fake.Dump() != before {
			t.Fatalf("%s changed the table", what)
		}
		if _, err := e.p.Sync(context.Background(), e.world.Full()); err != nil {
			t.Fatalf("retry after %s: %v", what, err)
		}
	}
	failOnce("a first failure")
	n := len(nl.batches)
	if err := change(); err != nil || len(nl.batches) != n+1 {
		t.Fatalf("after one failure: sync %v, %d batches; want a batch", err, len(nl.batches)-n)
	}
	for i := 1; i <= netlinkGiveUp; i++ {
		failOnce(fmt.Sprintf("failure %d in a row", i))
		if gaveUp := e.p.netlink == nil; gaveUp != (i == netlinkGiveUp) {
			t.Fatalf("after %d failures in a row netlink dropped = %v", i, gaveUp)
		}
	}
	if got := counterValue(t, m.NFTablesSyncFailuresTotal, "IPv4"); got != netlinkGiveUp+1 {
		t.Errorf("sync failures counted %v, want %d", got, netlinkGiveUp+1)
	}
	nft, batches := len(e.nft.txs), len(nl.batches)
	if err := change(); err != nil {
		t.Fatal(err)
	}
	if len(e.nft.txs) != nft+1 || len(nl.batches) != batches {
		t.Errorf("after giving up, a change ran %d nft transactions (want 1) and %d batches (want 0)",
			len(e.nft.txs)-nft, len(nl.batches)-batches)
	}
}

// A chunked full sync writes its fixed part over netlink too. A failed
// fixed-part batch fails the sync, changes nothing and is counted; the
// retry goes over netlink again, and after netlinkGiveUp failures in a
// row the fixed part (and every later sync) goes through nft -f.
func TestChunkedFullSyncSkeletonOverNetlink(t *testing.T) {
	e, nl := newNetlinkEnv(t, v1.IPv4Protocol, chunked(3))
	applyRandomWorld(e, v1.IPv4Protocol, 5, 12)
	ctx := context.Background()
	failSkeleton := func(what string) {
		t.Helper()
		before, txs := e.nft.Fake.Dump(), len(e.nft.txs)
		nl.fail = 1
		_, err := e.p.Sync(ctx, e.world.Full())
		if err == nil || !strings.Contains(err.Error(), "injected failure") || !strings.Contains(err.Error(), "transaction 1 of ") {
			t.Fatalf("%s: sync error %v, want the first transaction's injected failure", what, err)
		}
		if e.nft.Fake.Dump() != before || len(e.nft.txs) != txs {
			t.Fatalf("%s changed the table or ran nft", what)
		}
	}
	failSkeleton("a first failure")
	batches := len(nl.batches)
	if _, err := e.p.Sync(ctx, e.world.Full()); err != nil {
		t.Fatal(err)
	}
	if len(e.nft.txs) != 0 || !strings.HasPrefix(nl.batches[batches], "add table ip kube-proxy") {
		t.Fatalf("retry: %d nft transactions, first batch %.60q; want the fixed part over netlink", len(e.nft.txs), nl.batches[batches])
	}
	assertNoDanglingGotos(t, e)
	for i := 1; i <= netlinkGiveUp; i++ {
		failSkeleton(fmt.Sprintf("failure %d in a row", i))
	}
	if e.p.netlink != nil {
		t.Fatalf("netlink kept after %d failures in a row", netlinkGiveUp)
	}
	if _, err := e.p.Sync(ctx, e.world.Full()); err != nil {
		t.Fatal(err)
	}
	if len(e.nft.txs) < 2 || !strings.HasPrefix(e.nft.txs[0], "add table ip kube-proxy") {
		t.Fatalf("after giving up, nft ran %d transactions; want the fixed part first", len(e.nft.txs))
	}
	assertSameAsFullSync(t, e)
}
