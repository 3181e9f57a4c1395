package nftnl

import (
	"context"
	"encoding/binary"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
	"sigs.k8s.io/knftables"

	"github.com/kproxy/kproxy/test/kerneltest"
	"github.com/kproxy/kproxy/test/nftlisting"
)

// everyObjectBatch declares every fixed object (objects.go) and writes
// every fixed rule shape (rule_fixed.go) into an unreferenced chain, on
// an empty namespace: what a full sync's skeleton is made of.
func everyObjectBatch(f famText) *Batch {
	b := NewBatch(f.fam, "kube-proxy")
	b.AddTable("rules for kube-proxy")
	hooks := []Chain{
		{Name: "filter-prerouting-pre-dnat", Hook: &Hook{Type: knftables.FilterType, Hook: knftables.PreroutingHook, Priority: knftables.DNATPriority + "-10"}},
		{Name: "filter-input", Hook: &Hook{Type: knftables.FilterType, Hook: knftables.InputHook, Priority: knftables.FilterPriority}},
		{Name: "nat-output", Hook: &Hook{Type: knftables.NATType, Hook: knftables.OutputHook, Priority: knftables.DNATPriority}},
		{Name: "nat-postrouting", Hook: &Hook{Type: knftables.NATType, Hook: knftables.PostroutingHook, Priority: knftables.SNATPriority}},
	}
	for _, c := range hooks {
		b.AddChain(c.Name) // re-created: added plain, deleted, declared
		b.DeleteChain(c.Name)
		b.DeclareChain(c)
		b.FlushChain(c.Name)
	}
	b.DeclareChain(Chain{Name: "reject-chain", Comment: "helper for @no-endpoint-services / @no-endpoint-nodeports"})
	for _, c := range []string{"fixed", "firewall-check", "services"} {
		b.AddChain(c)
		b.FlushChain(c)
	}
	addr, proto, port := KeyAddr, KeyProto, KeyPort
	b.DeclareSet(Set{Name: "hairpin-connections", Key: []KeyField{addr, addr, proto, port}, Comment: "service hairpin connections"})
	b.DeclareSet(Set{Name: "cluster-ips", Key: []KeyField{addr}, Comment: "Active ClusterIPs"})
	b.DeclareSet(Set{Name: "nodeport-ips", Key: []KeyField{addr}})
	b.FlushSet("nodeport-ips", false)
	b.AddElements("nodeport-ips", Element{Key: []Field{AddrField(f.addr("192.168.0.2", "2001:db8::1"))}})
	b.DeclareSet(Set{Name: "service-ips", Key: []KeyField{addr, proto, port}, Verdicts: true, Comment: "ClusterIP, ExternalIP and LoadBalancer IP traffic"})
	for _, m := range []string{"service-nodeports", "no-endpoint-nodeports"} {
		b.DeclareSet(Set{Name: m, Key: []KeyField{proto, port}, Verdicts: true, Comment: "NodePort traffic"})
	}
	b.DeclareSet(Set{Name: "gone", Key: []KeyField{proto, port}, Verdicts: true})
	b.DeleteMap("gone")
	b.AddChain("gone-chain")
	b.DeleteChain("gone-chain")
	b.AddCounter("gone-counter")
	b.DeleteCounter("gone-counter")
	b.AddCounter("kept-counter")
	for _, c := range fixedShapes(f) {
		b.AddRule("fixed", c.rule)
	}
	// Unreferenced: no hook validates its statements (reject in
	// postrouting, masquerade in input …).
	return b
}

// TestKernelFixedObjectsLikeNft applies everyObjectBatch with nft -f (its
// String) in one namespace and with Conn.Run in another, twice (the
// second over the table the first left): identical listings and
// bytecode, and the same table, chains, named sets and counters as the
// kernel dumps them, attribute for attribute.
func TestKernelFixedObjectsLikeNft(t *testing.T) {
	for _, f := range famTexts() {
		t.Run(f.ip, func(t *testing.T) {
			nsNft, nsNl := kerneltest.Netns(t, "kpx-nftnl-"), kerneltest.Netns(t, "kpx-nftnl-")
			kerneltest.NeedTools(t, "nftnl kernel test", "nft")
			c := openConn(t, nsNl)
			for round := range 2 {
				b := everyObjectBatch(f)
				nftLoad(t, nsNft, b.String())
				if err := c.Run(context.Background(), b); err != nil {
					t.Fatalf("round %d: Run: %v\nbatch:\n%s", round, err, b.String())
				}
				if want, got := listTable(t, nsNft, f.ip), listTable(t, nsNl, f.ip); got != want {
					t.Fatalf("round %d: listing after Run differs from nft -f's:\n%s", round, nftlisting.LineDiff(want, got))
				}
				if want, got := listBytecode(t, nsNft, f.ip), listBytecode(t, nsNl, f.ip); got != want {
					t.Fatalf("round %d: bytecode after Run differs from nft -f's:\n%s", round, nftlisting.LineDiff(want, got))
				}
				want, got := dumpObjects(t, nsNft, f.fam), dumpObjects(t, nsNl, f.fam)
				for _, o := range []string{"table kube-proxy: ", "chain nat-postrouting: ", "chain reject-chain: ", "set hairpin-connections: ", "set service-ips: ", "obj kept-counter: "} {
					if !strings.Contains(want, "\n"+o) && !strings.HasPrefix(want, o) {
						t.Fatalf("the kernel's dump lacks %q:\n%s", o, want)
					}
				}
				if got != want {
					t.Fatalf("round %d: objects after Run differ from nft -f's:\n%s", round, nftlisting.LineDiff(want, got))
				}
			}
		})
	}
}

// Handle attributes x/sys/unix lacks.
const (
	nftaTableHandle = 4    // NFTA_TABLE_HANDLE
	nftaSetHandle   = 0x10 // NFTA_SET_HANDLE
	nftaObjHandle   = 6    // NFTA_OBJ_HANDLE
)

// dumpObjects is the kube-proxy table, its chains, named sets and
// counters as the kernel dumps them (attrsText, one object a line),
// without what the kernel numbers itself: handles and use counts.
func dumpObjects(t *testing.T, ns string, f Family) string {
	t.Helper()
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netnsFd(t, ns)})
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	var lines []string
	for _, d := range []struct {
		what        string
		typ         uint16
		table, name uint16
		volatile    []uint16
	}{
		{"table", unix.NFT_MSG_GETTABLE, unix.NFTA_TABLE_NAME, unix.NFTA_TABLE_NAME, []uint16{unix.NFTA_TABLE_USE, nftaTableHandle}},
		{"chain", unix.NFT_MSG_GETCHAIN, unix.NFTA_CHAIN_TABLE, unix.NFTA_CHAIN_NAME, []uint16{unix.NFTA_CHAIN_HANDLE, unix.NFTA_CHAIN_USE}},
		{"set", unix.NFT_MSG_GETSET, unix.NFTA_SET_TABLE, unix.NFTA_SET_NAME, []uint16{nftaSetHandle}},
		{"obj", unix.NFT_MSG_GETOBJ, unix.NFTA_OBJ_TABLE, unix.NFTA_OBJ_NAME, []uint16{nftaObjHandle, unix.NFTA_OBJ_USE}},
	} {
		for m, err := range receive(nl, dumpRequest(f, d.typ, nil)) {
			if err != nil {
				t.Fatalf("dump %ss: %v", d.what, err)
			}
			as, err := parseAttrs(m.Data[4:])
			if err != nil {
				t.Fatal(err)
			}
			name := attrString(as, d.name)
			if attrString(as, d.table) != "kube-proxy" || isAnonymousName(name) {
				continue
			}
			lines = append(lines, d.what+" "+name+": "+attrsText(t, stripAttrs(m.Data[4:], d.volatile)))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// stripAttrs is b without the top-level attributes of the given types.
func stripAttrs(b []byte, types []uint16) []byte {
	var out []byte
	for len(b) >= 4 {
		n := int(binary.NativeEndian.Uint16(b))
		if n < 4 || n > len(b) {
			break
		}
		typ := binary.NativeEndian.Uint16(b[2:]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		end := min(nlAlign(n), len(b))
		if !slices.Contains(types, typ) {
			out = append(out, b[:end]...)
		}
		b = b[end:]
	}
	return out
}

// netnsFd opens ns's file for the test's duration.
func netnsFd(t *testing.T, ns string) int {
	t.Helper()
	f, err := os.Open(kerneltest.NetnsPath(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return int(f.Fd())
}
