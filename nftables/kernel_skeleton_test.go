package nftables

import (
	"context"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/knftables"

	"github.com/kproxy/kproxy/nftables/nftnl"
	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/test/kerneltest"
	"github.com/kproxy/kproxy/test/nftlisting"
)

// skeletonConfig is one configuration of the table's fixed part.
type skeletonConfig struct {
	name          string
	detector      string // "", "cidr", "bridge", "prefix"
	cidrs         int    // ServiceCIDRs: 0, 1 or 2
	masqueradeAll bool
	nodePortsAll  bool
}

var skeletonConfigs = []skeletonConfig{
	{name: "no detector, no service cidrs"},
	{name: "cidr detector, one service cidr", detector: "cidr", cidrs: 1},
	{name: "bridge detector, nodeports on every address", detector: "bridge", cidrs: 2, nodePortsAll: true},
	{name: "interface prefix detector, masquerade all", detector: "prefix", cidrs: 2, masqueradeAll: true},
	{name: "cidr detector, masquerade all, nodeports on every address", detector: "cidr", cidrs: 2, masqueradeAll: true, nodePortsAll: true},
}

// options are c's Proxier options in family fam (NFT left out).
func (c skeletonConfig) options(fam v1.IPFamily) Options {
	v6 := fam == v1.IPv6Protocol
	pick := func(v4, v6s string) string {
		if v6 {
			return v6s
		}
		return v4
	}
	o := Options{Family: fam, MasqueradeMark: "0x4000", MasqueradeAll: c.masqueradeAll, NodePortsAll: c.nodePortsAll,
		NodePortIPs: []netip.Addr{netip.MustParseAddr(pick("192.168.0.2", "2001:db8::1")), netip.MustParseAddr(pick("127.0.0.1", "::1")),
			netip.MustParseAddr(pick("192.168.0.3", "2001:db8::3"))}}
	cidrs := []string{pick("172.30.0.0/16", "fd00:10:96::/112"), pick("10.96.0.0/12", "fd00:20::/64")}
	for _, s := range cidrs[:c.cidrs] {
		o.ServiceCIDRs = append(o.ServiceCIDRs, netip.MustParsePrefix(s))
	}
	switch c.detector {
	case "cidr":
		o.LocalDetector = localDetectorFor(fam)
	case "bridge":
		o.LocalDetector = netfilter.LocalDetector{IfLocal: []string{"-i", "cbr0"}, IfNotLocal: []string{"!", "-i", "cbr0"}}
	case "prefix":
		o.LocalDetector = netfilter.LocalDetector{IfLocal: []string{"-i", "veth+"}, IfNotLocal: []string{"!", "-i", "veth+"}}
	}
	return o
}

// TestKernelSkeletonOverNetlinkLikeNft writes the table's fixed part,
// for each configuration in both families, with nft -f (the text of the
// knftables transaction the nft path runs) in one namespace and as a
// netlink batch in another: first into an empty namespace (base chains
// re-created, as a process's first full sync does), then over the table
// that left, as a later full sync (base chains kept) and a restart (base
// chains re-created), and last each path over the other's table (an
// upgrade from nft -f, a fallback to it). After each, `nft list table`
// and the bytecode (`nft --debug=netlink list table`) must be identical.
func TestKernelSkeletonOverNetlinkLikeNft(t *testing.T) {
	for _, fam := range []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol} {
		for _, c := range skeletonConfigs {
			t.Run(string(fam)+"/"+c.name, func(t *testing.T) { testSkeletonLikeNft(t, fam, c) })
		}
	}
}

func testSkeletonLikeNft(t *testing.T, fam v1.IPFamily, c skeletonConfig) {
	nsNft, nsNl := kerneltest.Netns(t, "kpx-nft-"), kerneltest.Netns(t, "kpx-nftnl-")
	nft := nftBinary(t)
	kf := knftables.IPv4Family
	if fam == v1.IPv6Protocol {
		kf = knftables.IPv6Family
	}
	opts := c.options(fam)
	opts.NFT = knftables.NewFake(kf, TableName)
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ip := p.table.fam.ip
	for _, round := range []struct {
		name     string
		recreate bool
		swap     bool
	}{{"first sync", true, false}, {"resync over the table", false, false}, {"restart over the table", true, false},
		{"each over the other's table", false, true}} {
		if round.swap {
			nsNft, nsNl = nsNl, nsNft
		}
		p.baseRecreated = !round.recreate
		b := p.skeletonBatch()
		tx := opts.NFT.NewTransaction()
		b.AppendTo(tx)
		nftLoadIn(t, nft, nsNft, tx.String())
		if err := openConn(t, nsNl).Run(context.Background(), b); err != nil {
			t.Fatalf("%s: netlink: %v", round.name, err)
		}
		want, got := listTable(t, nft, nsNft, ip), listTable(t, nft, nsNl, ip)
		if !strings.Contains(want, "chain cluster-ips-check") {
			t.Fatalf("%s: nft -f left no table:\n%s", round.name, want)
		}
		if got != want {
			t.Fatalf("%s: listing after the netlink batch differs from nft -f's:\n%s", round.name, nftlisting.LineDiff(want, got))
		}
		want, got = listBytecode(t, nft, nsNft, ip), listBytecode(t, nft, nsNl, ip)
		if got != want {
			t.Fatalf("%s: bytecode after the netlink batch differs from nft -f's:\n%s", round.name, nftlisting.LineDiff(want, got))
		}
	}
	if c.cidrs == 2 && !strings.Contains(listBytecode(t, nft, nsNl, ip), "lookup reg 1 set __set") {
		t.Errorf("two service CIDRs: no anonymous set in the bytecode")
	}
}

var anonSetNameRE = regexp.MustCompile(`__(set|map)[A-Z0-9]+`)

// listBytecode is the table's bytecode as the kernel holds it (`nft
// --debug=netlink list table`), rule handles and positions included,
// without element dumps (the kernel's order) and with anonymous sets'
// names left out (nft numbers them, nftnl names them; the listing shows
// their contents).
func listBytecode(t *testing.T, nft, ns, family string) string {
	t.Helper()
	out := kerneltest.NetnsExec(t, ns, nft, "--debug=netlink", "list", "table", family, TableName)
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "\telement ") {
			continue
		}
		keep = append(keep, anonSetNameRE.ReplaceAllString(l, "__${1}…"))
	}
	return strings.Join(keep, "\n")
}

func openConn(t *testing.T, ns string) *nftnl.Conn {
	t.Helper()
	c, err := nftnl.Open(nftnl.Options{NetNS: kerneltest.NetnsPath(t, ns)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}
