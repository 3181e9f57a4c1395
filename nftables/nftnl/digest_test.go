package nftnl

import (
	"context"
	"net/netip"
	"testing"

	"github.com/kproxy/kproxy/test/kerneltest"
)

// Every rule shape has its own digest, and so has every change of a
// rule's comment, set contents or order.
func TestRulesDigestsDiffer(t *testing.T) {
	for _, f := range famTexts() {
		rules := everyShapeRules(f)
		seen := map[Digest]int{}
		check := func(what string, rs []Rule) {
			t.Helper()
			d, err := RulesDigest(f.fam, "kube-proxy", rs)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if again, _ := RulesDigest(f.fam, "kube-proxy", rs); again != d {
				t.Fatalf("%s: digest not deterministic", what)
			}
			if n, dup := seen[d]; dup {
				t.Errorf("%s %s: same digest as variant %d", f.ip, what, n)
			}
			seen[d] = len(seen)
		}
		texts := map[string]bool{}
		for i, r := range rules {
			if m, ok := r.Match.(SaddrPrefix); ok && m.Prefix != m.Prefix.Masked() {
				continue // the same rule as the masked prefix's
			}
			if text := r.Text(f.fam); !texts[text] {
				texts[text] = true
				check("rule "+text, rules[i:i+1])
			}
		}
		check("all rules", rules)
		check("all rules but the last", rules[:len(rules)-1])
		swapped := append([]Rule{rules[1], rules[0]}, rules[2:]...)
		check("first two swapped", swapped)
		commented := []Rule{rules[1]}
		commented[0].Comment = "other"
		check("comment added", commented)
		ep := f.ep("10.180.0.7:80", "[fd00:10:180::7]:80")
		check("numgen endpoint changed", []Rule{{Stmt: NumgenDNAT{Proto: "tcp", To: []netip.AddrPort{ep}}}})
		check("numgen chain changed", []Rule{{Stmt: NumgenGoto{Chains: []string{"ep-a", "ep-c"}}, Comment: "ns/svc:p80"}})
		check("no rules", nil)
	}
}

// TestKernelChainDigests: the kernel's digest of each chain a batch wrote
// equals RulesDigest of its rules, whether nft -f or Conn.Run wrote them;
// a chain changed behind kproxy's back digests differently.
func TestKernelChainDigests(t *testing.T) {
	for _, f := range famTexts() {
		t.Run(f.ip, func(t *testing.T) {
			kerneltest.NeedTools(t, "nftnl kernel test", "nft")
			nsNft, nsNl := kerneltest.Netns(t, "kpx-nftnl-"), kerneltest.Netns(t, "kpx-nftnl-")
			b := everyShapeBatch(f)
			for _, ns := range []string{nsNft, nsNl} {
				nftLoad(t, ns, f.base())
			}
			nftLoad(t, nsNft, b.String())
			if err := openConn(t, nsNl).Run(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			want := map[string][]Rule{
				"new-svc":   everyShapeRules(f),
				"svc-flush": {{Stmt: Goto{Chain: "ep-b"}, Comment: "refilled"}},
			}
			for _, ns := range []string{nsNft, nsNl} {
				c := openConn(t, ns)
				got, err := c.ChainDigests(context.Background(), f.fam, "kube-proxy")
				if err != nil {
					t.Fatal(err)
				}
				// Sets that Conn.Run wrote carry their identity; nft's are dumped.
				if dumps := c.setDumps.Load(); (dumps == 0) != (ns == nsNl) {
					t.Errorf("%s: %d anonymous sets dumped (nft wrote them: %v)", ns, dumps, ns == nsNft)
				}
				for chain, rules := range want {
					d, err := RulesDigest(f.fam, "kube-proxy", rules)
					if err != nil {
						t.Fatal(err)
					}
					if got[chain] != d {
						t.Errorf("%s: chain %s digests %x in the kernel, want %x", ns, chain, got[chain], d)
					}
				}
				if _, ok := got["new-svc-empty"]; ok {
					t.Errorf("an empty chain has a digest")
				}
			}
			// Changed behind kproxy's back: one numgen element, one comment.
			nftLoad(t, nsNl, "flush chain "+f.ip+" kube-proxy svc-flush\nadd rule "+f.ip+" kube-proxy svc-flush goto ep-b comment \"changed\"\n")
			c := openConn(t, nsNl)
			got, err := c.ChainDigests(context.Background(), f.fam, "kube-proxy")
			if err != nil {
				t.Fatal(err)
			}
			if d, _ := RulesDigest(f.fam, "kube-proxy", want["svc-flush"]); got["svc-flush"] == d {
				t.Errorf("a changed comment digests the same")
			}
			missing, err := c.ChainDigests(context.Background(), f.fam, "no-such-table")
			if err != nil || len(missing) != 0 {
				t.Errorf("missing table: %v, %v; want nothing", missing, err)
			}
		})
	}
}

// A table upstream kube-proxy wrote (loaded from its listing by nft)
// digests as kproxy's rules for the same chains: a restart over it
// rewrites nothing that is already right.
func TestKernelUpstreamChainsDigestAsOurs(t *testing.T) {
	data := readUpstreamListing(t)
	ns := kerneltest.Netns(t, "kpx-nftnl-")
	kerneltest.NeedTools(t, "nftnl kernel test", "nft")
	nftLoad(t, ns, data)
	c := openConn(t, ns)
	for _, fam := range []Family{IPv4, IPv6} {
		got, err := c.ChainDigests(context.Background(), fam, "kube-proxy")
		if err != nil {
			t.Fatal(err)
		}
		for name, rules := range upstreamChains(fam) {
			want, err := RulesDigest(fam, "kube-proxy", rules)
			if err != nil {
				t.Fatal(err)
			}
			if got[name] != want {
				t.Errorf("%s: upstream's chain %s digests %x, kproxy's rules %x", fam.IP(), name, got[name], want)
			}
		}
	}
}
