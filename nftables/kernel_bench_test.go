package nftables

import (
	"context"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"testing"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/kproxy/kproxy/nftables/nftnl"
	nftcmd "github.com/kproxy/kproxy/proxier/netfilter/nft"
	"github.com/kproxy/kproxy/test/kerneltest"
)

// TestKernelTiming10k times syncs of 10000 services × 10 endpoints with
// the real nft in a namespace: the first full sync, a full sync over the
// existing table, and one-endpoint partial syncs (medians). Opt-in:
// KPROXY_NFT_TIMING=1 (KPROXY_NFT_TIMING_SERVICES overrides 10000;
// KPROXY_NFT_TIMING_NO_RESYNC=1 skips the full sync over the table;
// KPROXY_NFT_TIMING_NFT_ONLY=1 writes without netlink;
// KPROXY_NFT_TIMING_CHUNK sets the full sync's chunk size;
// KPROXY_NFT_TIMING_HEAP=file writes the live heap after the first full
// sync, for go tool pprof).
func TestKernelTiming10k(t *testing.T) {
	kerneltest.OptIn(t, "KPROXY_NFT_TIMING", "timing of nftables syncs at 10k services with the real nft")
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("KPROXY_NFT_TIMING_SERVICES")); err == nil && v > 0 {
		n = v
	}
	ns := kerneltest.Netns(t, "kpx-nftb-")
	nftInNetns(t, nftBinary(t), ns, knftables.IPv4Family)
	real, err := nftcmd.Open(context.Background(), nftcmd.Options{Family: knftables.IPv4Family, Table: TableName,
		Timeout: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	w, svcs := benchWorld(t, n, 10)
	var nft knftables.Interface = real
	if dir := os.Getenv("KPROXY_NFT_TIMING_DUMP"); dir != "" {
		nft = &dumpingNFT{Interface: real, dir: dir}
	}
	p := benchProxier(t, nft)
	if os.Getenv("KPROXY_NFT_TIMING_NFT_ONLY") == "" {
		conn, err := nftnl.Open(nftnl.Options{NetNS: "/run/netns/" + ns})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		p.netlink = conn
	}
	if v, err := strconv.Atoi(os.Getenv("KPROXY_NFT_TIMING_CHUNK")); err == nil {
		p.chunk = v
	}
	ctx := context.Background()
	timed := func(what string) time.Duration {
		start := time.Now()
		snap := w.Snapshot()
		res, err := p.Sync(ctx, snap)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		d := time.Since(start)
		t.Logf("%s: %v (full=%v, %d bytes)", what, d, res.Full, res.RestoreBytes)
		return d
	}
	timed("first full sync")
	writeHeapProfile(t, os.Getenv("KPROXY_NFT_TIMING_HEAP"))
	var partial []time.Duration
	for gen := 1; gen <= 7; gen++ {
		i := (gen * 7919) % len(svcs)
		w.Apply(benchSlice(svcs[i], i, 10, gen))
		partial = append(partial, timed("one endpoint changed"))
	}
	slices.Sort(partial)
	t.Logf("one endpoint changed: median %v of %d", partial[len(partial)/2], len(partial))
	if os.Getenv("KPROXY_NFT_TIMING_NO_RESYNC") != "" {
		return
	}
	snap := w.Full()
	start := time.Now()
	if _, err := p.Sync(ctx, snap); err != nil {
		t.Fatal(err)
	}
	t.Logf("full sync over the existing table: %v", time.Since(start))
}

// dumpingNFT writes every transaction to dir/tx-N.nft before running it.
type dumpingNFT struct {
	knftables.Interface
	dir string
	n   int
}

func (d *dumpingNFT) Run(ctx context.Context, tx *knftables.Transaction) error {
	d.n++
	_ = os.WriteFile(d.dir+"/tx-"+strconv.Itoa(d.n)+".nft", []byte(tx.String()), 0o644)
	return d.Interface.Run(ctx, tx)
}

// writeHeapProfile writes the live heap, after a collection, to path
// (nothing when path is empty).
func writeHeapProfile(t *testing.T, path string) {
	if path == "" {
		return
	}
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		t.Fatal(err)
	}
}
