package nftnl

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
	"sigs.k8s.io/knftables"

	"github.com/kproxy/kproxy/test/kerneltest"
	"github.com/kproxy/kproxy/test/nftlisting"
)

// TestRuleInsertAndDeleteEncodeAsNft: `insert rule … handle H` is a
// NEWRULE without NLM_F_APPEND, positioned at H; `delete rule … handle H`
// a DELRULE naming H. Their text is knftables' and runs on its Fake.
func TestRuleInsertAndDeleteEncodeAsNft(t *testing.T) {
	b := NewBatch(IPv4, "kube-proxy")
	b.InsertRule("svc", 7, Rule{Stmt: Drop{}, Comment: "first"})
	b.DeleteRule("svc", 9)
	msgs, err := encodeBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		typ    uint16
		flags  netlink.HeaderFlags
		handle uint16 // the attribute carrying the handle
	}{{unix.NFT_MSG_NEWRULE, netlink.Create, unix.NFTA_RULE_POSITION}, {unix.NFT_MSG_DELRULE, 0, unix.NFTA_RULE_HANDLE}}
	if len(msgs) != len(want) {
		t.Fatalf("%d messages, want %d", len(msgs), len(want))
	}
	for i, w := range want {
		var table, chain string
		var handle uint64
		a := decoder(t, msgs[i].data)
		for a.Next() {
			switch a.Type() {
			case unix.NFTA_RULE_TABLE:
				table = a.String()
			case unix.NFTA_RULE_CHAIN:
				chain = a.String()
			case w.handle:
				handle = a.Uint64()
			}
		}
		if msgs[i].typ != w.typ || msgs[i].flags != w.flags || table != "kube-proxy" || chain != "svc" || handle != uint64(7+2*i) {
			t.Errorf("message %d: type %d flags %v %s %s handle %d, want %+v", i, msgs[i].typ, msgs[i].flags, table, chain, handle, w)
		}
	}
	wantText := "insert rule ip kube-proxy svc handle 7 drop comment \"first\"\ndelete rule ip kube-proxy svc handle 9\n"
	if got := b.String(); got != wantText {
		t.Errorf("text:\n%s\nwant:\n%s", got, wantText)
	}
	// On the Fake: the new rule goes before rule 7, rule 9 goes.
	fake := knftables.NewFake(knftables.IPv4Family, "kube-proxy")
	tx := fake.NewTransaction()
	tx.Add(&knftables.Table{})
	tx.Add(&knftables.Chain{Name: "svc"})
	for range 9 {
		tx.Add(&knftables.Rule{Chain: "svc", Rule: "accept"})
	}
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatal(err)
	}
	rules, _ := fake.ListRules(context.Background(), "svc")
	first, last := *rules[0].Handle, *rules[len(rules)-1].Handle
	b = NewBatch(IPv4, "kube-proxy")
	b.InsertRule("svc", uint64(first), Rule{Stmt: Drop{}})
	b.DeleteRule("svc", uint64(last))
	tx = fake.NewTransaction()
	b.AppendTo(tx)
	if tx.String() != b.String() {
		t.Errorf("knftables text:\n%s\nbatch text:\n%s", tx.String(), b.String())
	}
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatal(err)
	}
	rules, _ = fake.ListRules(context.Background(), "svc")
	if len(rules) != 9 || rules[0].Rule != "drop" || *rules[8].Handle == last {
		t.Errorf("after the batch the Fake's chain is %d rules, first %q", len(rules), rules[0].Rule)
	}
}

// TestKernelSwapKeepsUpstreamListing replaces chains of a table upstream
// kube-proxy wrote with the same rules, twice, without flushing them: the
// new rules inserted before the old ones (RuleHandles lists them), then the
// old ones deleted, over netlink in one namespace and by nft -f in
// another. Both then list exactly upstream's table; the second round's
// anonymous sets are named apart from the first's, which still exist
// when it adds them.
func TestKernelSwapKeepsUpstreamListing(t *testing.T) {
	nsNft, nsNl := kerneltest.Netns(t, "kpx-nftnl-"), kerneltest.Netns(t, "kpx-nftnl-")
	kerneltest.NeedTools(t, "nftnl kernel test", "nft")
	data := readUpstreamListing(t)
	for _, ns := range []string{nsNft, nsNl} {
		nftLoad(t, ns, data)
	}
	c := openConn(t, nsNl)
	ctx := context.Background()
	for _, fam := range []Family{IPv4, IPv6} {
		before := listTable(t, nsNl, fam.IP())
		chains := upstreamChains(fam)
		for round := 1; round <= 2; round++ {
			insert, remove := NewBatch(fam, "kube-proxy"), NewBatch(fam, "kube-proxy")
			for _, name := range slices.Sorted(maps.Keys(chains)) {
				old, err := c.RuleHandles(ctx, fam, "kube-proxy", name)
				if err != nil {
					t.Fatal(err)
				}
				if want := nftHandles(t, nsNft, fam.IP(), name); !slices.Equal(old, want) {
					t.Fatalf("%s %s: RuleHandles %v, nft lists %v", fam.IP(), name, old, want)
				}
				for _, r := range chains[name] {
					insert.InsertRule(name, old[0], r)
				}
				for _, h := range old {
					remove.DeleteRule(name, h)
				}
			}
			for _, b := range []*Batch{insert, remove} {
				nftLoad(t, nsNft, b.String())
				if err := c.Run(ctx, b); err != nil {
					t.Fatalf("%s round %d: Run: %v\n%s", fam.IP(), round, err, b)
				}
			}
			for _, ns := range []string{nsNl, nsNft} {
				if got := listTable(t, ns, fam.IP()); got != before {
					t.Errorf("%s round %d: swapped table in %s differs from upstream's:\n%s", fam.IP(), round, ns, nftlisting.LineDiff(before, got))
				}
			}
		}
	}
}

// nftHandles are the handles `nft -a list chain` shows for chain's rules.
func nftHandles(t *testing.T, ns, family, chain string) []uint64 {
	t.Helper()
	var out []uint64
	for _, l := range strings.Split(kerneltest.NetnsExec(t, ns, "nft", "-a", "list", "chain", family, "kube-proxy", chain), "\n") {
		_, h, ok := strings.Cut(l, " # handle ")
		if !ok || strings.Contains(l, "chain ") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(h), 10, 64)
		if err != nil {
			t.Fatalf("handle in %q: %v", l, err)
		}
		out = append(out, n)
	}
	return out
}
