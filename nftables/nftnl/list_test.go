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

// TestKernelVerdictChains: the chains a verdict map's elements go to, as
// many as it has elements (thousands: a dump of several messages), with
// "" for another verdict; a missing map is an error.
func TestKernelVerdictChains(t *testing.T) {
	ns := kerneltest.Netns(t, "kpx-nftnl-")
	kerneltest.NeedTools(t, "nftnl kernel test", "nft")
	var text strings.Builder
	text.WriteString("table ip kube-proxy {\n\tmap service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }\n")
	var want []string
	for i := range 2000 {
		name := fmt.Sprintf("service-%04d-ns/svc%d/tcp/p80", i, i)
		want = append(want, name)
		fmt.Fprintf(&text, "\tchain %s { }\n", name)
	}
	text.WriteString("}\n")
	for i, name := range want {
		fmt.Fprintf(&text, "add element ip kube-proxy service-ips { 10.0.%d.%d . tcp . 80 : goto %s }\n", i/250, i%250, name)
	}
	text.WriteString("add element ip kube-proxy service-ips { 10.9.9.9 . udp . 53 : drop }\n")
	want = append(want, "")
	nftLoad(t, ns, text.String())
	got, err := openConn(t, ns).VerdictChains(context.Background(), IPv4, "kube-proxy", "service-ips")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%d chains listed, want %d (first listed %q)", len(got), len(want), got[:min(3, len(got))])
	}
	if _, err := openConn(t, ns).VerdictChains(context.Background(), IPv4, "kube-proxy", "no-such-map"); err == nil {
		t.Errorf("a missing map listed without error")
	}
}
