package nftables

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/knftables"

	"github.com/kproxy/kproxy/nftables/nftnl"
	nftcmd "github.com/kproxy/kproxy/proxier/netfilter/nft"
	. "github.com/kproxy/kproxy/proxier/proxiertest"
	"github.com/kproxy/kproxy/test/kerneltest"
	"github.com/kproxy/kproxy/test/nftlisting"
)

// nftBinary is the real nft's path (the test's own commands use it, never
// the wrapper below).
func nftBinary(t *testing.T) string {
	t.Helper()
	kerneltest.NeedTools(t, "nftables kernel test", "nft", "ip")
	path, err := exec.LookPath("nft")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(path, os.TempDir()) {
		t.Fatalf("nft resolves to a test wrapper: %s", path)
	}
	return path
}

// nftInNetns returns a knftables.Interface whose nft runs inside network
// namespace ns: a wrapper script named nft, first in PATH for this test.
func nftInNetns(t *testing.T, real, ns string, fam knftables.Family) knftables.Interface {
	t.Helper()
	dir := t.TempDir()
	script := "#!/bin/sh\nexec ip netns exec " + ns + " " + real + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "nft"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	nft, err := nftcmd.Open(context.Background(), nftcmd.Options{Family: fam, Table: TableName, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatalf("knftables.New in %s: %v", ns, err)
	}
	return nft
}

var elementsRE = regexp.MustCompile(`elements = \{([^}]*)\}`)

// listTable is `nft list table <family> kube-proxy` in ns with the elements of
// every set and map sorted (the kernel lists hash sets in its own order).
func listTable(t *testing.T, nft, ns, family string) string {
	t.Helper()
	out := kerneltest.NetnsExec(t, ns, nft, "list", "table", family, TableName)
	out = elementsRE.ReplaceAllStringFunc(out, func(m string) string {
		body := elementsRE.FindStringSubmatch(m)[1]
		var items []string
		for _, it := range strings.Split(body, ",") {
			items = append(items, strings.Join(strings.Fields(it), " "))
		}
		slices.Sort(items)
		return "elements = { " + strings.Join(items, ", ") + " }"
	})
	return sortBlocks(out)
}

// sortBlocks orders the table's chain, set and map blocks by their header
// line: nft lists them in creation order, which differs between a sequence
// of syncs and one load of the same table.
func sortBlocks(listing string) string {
	var head []string
	var blocks []string
	var cur []string
	for _, line := range strings.Split(listing, "\n") {
		switch {
		case cur != nil:
			cur = append(cur, line)
			if line == "\t}" {
				blocks = append(blocks, strings.Join(cur, "\n"))
				cur = nil
			}
		case strings.HasPrefix(line, "\t") && strings.HasSuffix(line, "{"):
			cur = []string{line}
		case strings.TrimSpace(line) != "":
			head = append(head, line)
		}
	}
	slices.Sort(blocks)
	return strings.Join(head, "\n") + "\n" + strings.Join(blocks, "\n")
}

// loadDump writes the Fake's view (its Dump, nft commands) into a fresh
// table in ns.
func loadDump(t *testing.T, nft, ns, family, dump string) {
	t.Helper()
	_ = exec.Command("ip", "netns", "exec", ns, nft, "delete", "table", family, TableName).Run()
	cmd := exec.Command("ip", "netns", "exec", ns, nft, "-f", "-")
	cmd.Stdin = strings.NewReader(dump)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f of the Fake's dump: %v: %s", err, out)
	}
}

// nftLoadIn runs nft -f with text in ns.
func nftLoadIn(t *testing.T, nft, ns, text string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, nft, "-f", "-")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f in %s: %v: %s\ninput:\n%s", ns, err, out, text)
	}
}

// countingRunner counts the batches that ran, and those that inserted
// rules (swapped chains, swap.go).
type countingRunner struct {
	*nftnl.Conn
	n, inserts int
}

func (c *countingRunner) Run(ctx context.Context, b *nftnl.Batch) error {
	if err := c.Conn.Run(ctx, b); err != nil {
		return err
	}
	c.n++
	if strings.Contains("\n"+b.String(), "\ninsert rule ") {
		c.inserts++
	}
	return nil
}

// kernelStep is one change of TestKernelSyncsMatchTheFake's world.
type kernelStep struct {
	name   string
	change func(w *World)
	full   bool // sync a full snapshot
	// tamper changes the kernel's table behind kproxy's back before the
	// sync, which must repair it.
	tamper bool
}

// tamperServiceChains rewrites two per-service chains of the kernel's
// table: one to drop everything, one with the first two entries of its
// endpoint map swapped (the same rules, other anonymous map contents).
func tamperServiceChains(t *testing.T, nft, ns, fam string) {
	t.Helper()
	table := kerneltest.NetnsExec(t, ns, nft, "list", "table", fam, TableName)
	entries := regexp.MustCompile(`\{ 0 : ([^,{}]+?),\s*1 : ([^,{}]+?)\s*([,}])`)
	var dropped, swapped string
	for _, m := range regexp.MustCompile(`chain (service-\S+) \{`).FindAllStringSubmatch(table, -1) {
		chain := m[1]
		text := kerneltest.NetnsExec(t, ns, nft, "list", "chain", fam, TableName, chain)
		switch e := entries.FindStringSubmatch(text); {
		case e != nil && swapped == "":
			swapped = chain
			text = strings.Replace(text, e[0], "{ 0 : "+e[2]+", 1 : "+e[1]+" "+e[3], 1)
			nftLoadIn(t, nft, ns, "flush chain "+fam+" kube-proxy "+chain+"\n"+text)
		case dropped == "":
			dropped = chain
			nftLoadIn(t, nft, ns, "flush chain "+fam+" kube-proxy "+chain+"\nadd rule "+fam+" kube-proxy "+chain+" drop\n")
		}
	}
	if dropped == "" || swapped == "" {
		t.Fatalf("found no service chains to tamper with:\n%s", table)
	}
}

// kernelSteps are the changes for one family: upstream's overall services,
// then an endpoint added, a service deleted, a full resync (chunked on the
// kernel side) while its chains are stale, a service's endpoints gone, an
// affinity service's endpoint replaced, its affinity timeout changed, and
// a sync that deletes the stale chains.
func kernelSteps(fam v1.IPFamily) []kernelStep {
	ip := func(v4, v6 string) string {
		if fam == v1.IPv6Protocol {
			return v6
		}
		return v4
	}
	apply := applyOverallIPv4
	if fam == v1.IPv6Protocol {
		apply = applyOverallIPv6
	}
	return []kernelStep{
		{name: "full", change: apply},
		{name: "endpoint added", change: func(w *World) {
			svc4 := Service("ns4", "svc4", ClusterIP(ip("172.30.0.44", "fd00:172:30::44")))
			w.Apply(SliceFor(svc4, Endpoint(ip("10.180.0.4", "fd00:10:180::4"), OnNode("other-node")),
				Endpoint(ip("10.180.0.5", "fd00:10:180::5"), OnNode(testNodeName)),
				Endpoint(ip("10.180.0.6", "fd00:10:180::6"), OnNode(testNodeName))))
		}},
		{name: "service deleted", change: func(w *World) { w.Delete(Service("ns1", "svc1")) }},
		{name: "full resync over the table", change: func(w *World) {}, full: true, tamper: true},
		{name: "endpoints gone", change: func(w *World) { w.Apply(SliceFor(Service("ns3", "svc3"))) }},
		// Over netlink, svc5's chain is swapped (swap.go): its old rules
		// and their endpoint's affinity set are deleted after the new
		// rules are in.
		{name: "affinity endpoint replaced", change: func(w *World) {
			w.Apply(SliceFor(Service("ns5", "svc5", Port("p80", v1.ProtocolTCP, 80)),
				Endpoint(ip("10.180.0.7", "fd00:10:180::7"), OnNode(testNodeName)),
				Endpoint(ip("10.180.0.8", "fd00:10:180::8"), OnNode("other-node"))))
		}},
		{name: "affinity timeout changed", change: func(w *World) {
			w.Apply(Service("ns5", "svc5", ClusterIP(ip("172.30.0.45", "fd00:172:30::45")), Port("p80", v1.ProtocolTCP, 80),
				NodePort(3002), LoadBalancer(ip("5.6.7.8", "5555::2")), SourceRanges(ip("203.0.113.0/25", "2001:db8:203::/64")),
				Affinity(600)))
		}},
		{name: "stale chains deleted", change: func(w *World) {}},
	}
}

// TestKernelSyncsMatchTheFake applies a full sync and partial syncs with
// the real nft in a namespace, and after each compares `nft list table`
// with the same listing of the Fake's view (its dump loaded into a second
// namespace): the kernel holds exactly what the Fake, and the mirror,
// believe. At the end the kernel also equals one full sync of the final
// state by a fresh Proxier.
func TestKernelSyncsMatchTheFake(t *testing.T) {
	for _, fam := range []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol} {
		t.Run(string(fam), func(t *testing.T) { runKernelSyncs(t, fam, false) })
		// Partial syncs and stale chain deletions written over netlink
		// (nftnl.Conn in the namespace) list exactly as nft -f's.
		t.Run(string(fam)+"/netlink", func(t *testing.T) { runKernelSyncs(t, fam, true) })
	}
}

func runKernelSyncs(t *testing.T, fam v1.IPFamily, netlink bool) {
	nsReal := kerneltest.Netns(t, "kpx-nft-")
	nsView := kerneltest.Netns(t, "kpx-nftv-")
	nft := nftBinary(t)
	e := newTestEnv(t, fam) // the Fake side
	kf := knftables.IPv4Family
	if fam == v1.IPv6Protocol {
		kf = knftables.IPv6Family
	}
	real := nftInNetns(t, nft, nsReal, kf)
	opts := Options{NFT: real, Family: fam, MasqueradeMark: "0x4000", LocalDetector: localDetectorFor(fam),
		NodePortIPs: e.p.table.nodePortIPs, NodeIP: e.p.ctx.nodeIP, ServiceCIDRs: e.p.table.serviceCIDRs,
		Now: e.clock.now, FullSyncChunkChains: 2} // full syncs in several transactions, against the Fake's one
	var batches *countingRunner
	if netlink {
		conn, err := nftnl.Open(nftnl.Options{NetNS: "/run/netns/" + nsReal})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		batches = &countingRunner{Conn: conn}
		opts.Netlink = batches
	}
	kp, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	nfam := e.p.table.fam.ip
	for _, st := range kernelSteps(fam) {
		if st.tamper {
			tamperServiceChains(t, nft, nsReal, nfam)
		}
		st.change(e.world)
		e.clock.advance(700 * time.Millisecond)
		snap := e.world.Snapshot()
		if st.full {
			snap = e.world.Full()
		}
		if _, err := kp.Sync(ctx, snap); err != nil {
			t.Fatalf("%s: real nft: %v", st.name, err)
		}
		if _, err := e.p.Sync(ctx, snap); err != nil {
			t.Fatalf("%s: fake: %v", st.name, err)
		}
		loadDump(t, nft, nsView, nfam, e.nft.Dump())
		got, want := listTable(t, nft, nsReal, nfam), listTable(t, nft, nsView, nfam)
		if !strings.Contains(got, "chain services") || !strings.Contains(want, "chain services") {
			t.Fatalf("%s: a listing lacks the table:\nkernel:\n%s\nview:\n%s", st.name, got, want)
		}
		if got != want {
			t.Fatalf("%s: kernel table differs from the Fake's view:\n%s", st.name, nftlisting.LineDiff(want, got))
		}
	}
	// Partial syncs: endpoint added (swapped: 2 batches), service
	// deleted, endpoints gone, affinity endpoint replaced (swapped: 2),
	// affinity timeout changed, and stale chain deletions.
	if netlink && batches.n < 7 {
		t.Errorf("%d netlink batches ran; want at least the 7 of the partial syncs", batches.n)
	}
	// Swapped: svc4's chain (endpoint added), the tampered chains (full
	// resync, in a chunk), svc5's (affinity endpoint replaced).
	if netlink && batches.inserts < 3 {
		t.Errorf("%d netlink batches inserted rules; want at least 3", batches.inserts)
	}
	fresh := knftables.NewFake(kf, TableName)
	p2, _ := New(Options{NFT: fresh, Family: fam, MasqueradeMark: "0x4000", LocalDetector: localDetectorFor(fam),
		NodePortIPs: e.p.table.nodePortIPs, NodeIP: e.p.ctx.nodeIP, ServiceCIDRs: e.p.table.serviceCIDRs})
	snap := e.world.Snapshot()
	snap.Full = true
	if _, err := p2.Sync(ctx, snap); err != nil {
		t.Fatal(err)
	}
	loadDump(t, nft, nsView, nfam, fresh.Dump())
	if got, want := listTable(t, nft, nsReal, nfam), listTable(t, nft, nsView, nfam); got != want {
		t.Fatalf("kernel table after partial syncs differs from one full sync:\n%s", nftlisting.LineDiff(want, got))
	}
	if out := kerneltest.NetnsExec(t, nsReal, nft, "list", "chains"); strings.Contains(out, "ns1/svc1") || !strings.Contains(out, "ns4/svc4") {
		t.Errorf("want ns4/svc4's chains and no stale ns1/svc1 chain in the kernel:\n%s", out)
	}
}
