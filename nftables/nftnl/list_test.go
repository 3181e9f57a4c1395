package nftnl

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/kproxy/kproxy/test/kerneltest"
)

// TestKernelListNames lists one table's chains and named sets among other
// tables of both families, with anonymous sets the kernel also holds, and
// many chains (the dump spans many messages); a missing table lists empty.
func TestKernelListNames(t *testing.T) {
	ns := kerneltest.Netns(t, "kpx-nftnl-")
	kerneltest.NeedTools(t, "nftnl kernel test", "nft")
	var chains []string
	var text strings.Builder
	text.WriteString("table ip kube-proxy {\n")
	for i := range 3000 {
		name := fmt.Sprintf("endpoint-ABCDEFGH-ns%d/svc/tcp/p80__10.0.%d.%d/80", i, i/250, i%250)
		chains = append(chains, name)
		fmt.Fprintf(&text, "\tchain %s { ip saddr { 10.1.0.1, 10.1.0.2 } drop ; }\n", name)
	}
	chains = append(chains, "services")
	text.WriteString("\tchain services { ip daddr . meta l4proto . th dport vmap @service-ips ; }\n")
	text.WriteString("\tset cluster-ips { type ipv4_addr ; }\n")
	text.WriteString("\tset affinity-X-ns/svc/tcp/p80__10.0.0.1/80 { type ipv4_addr ; flags dynamic,timeout ; timeout 3h ; }\n")
	text.WriteString("\tmap service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }\n}\n")
	text.WriteString("table ip other { set not-mine { type ipv4_addr ; } ; chain not-mine { } ; }\n")
	text.WriteString("table ip6 kube-proxy { set not-mine { type ipv6_addr ; } ; chain not-mine { } ; }\n")
	nftLoad(t, ns, text.String())
	c := openConn(t, ns)
	got, err := c.ListNames(context.Background(), IPv4, "kube-proxy")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got.Chains)
	slices.Sort(got.Sets)
	slices.Sort(chains)
	if !slices.Equal(got.Chains, chains) {
		t.Errorf("chains: %d listed, want %d (first listed %q)", len(got.Chains), len(chains), got.Chains[:min(3, len(got.Chains))])
	}
	wantSets := []string{"affinity-X-ns/svc/tcp/p80__10.0.0.1/80", "cluster-ips", "service-ips"}
	if !slices.Equal(got.Sets, wantSets) {
		t.Errorf("sets: %q, want %q", got.Sets, wantSets)
	}
	missing, err := c.ListNames(context.Background(), IPv4, "no-such-table")
	if err != nil || len(missing.Chains)+len(missing.Sets) != 0 {
		t.Errorf("missing table: %+v, %v; want nothing, no error", missing, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.ListNames(ctx, IPv4, "kube-proxy"); err == nil {
		t.Errorf("a cancelled listing succeeded")
	}
}
