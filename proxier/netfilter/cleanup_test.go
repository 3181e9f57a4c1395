package netfilter_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// leftovers is what both modes leave behind, plus other software's rules:
// a counting rule whose comment reads like a jump to one of our chains
// (it must neither be deleted nor spare the chain), and a foreign chain
// that still jumps to KUBE-FORWARD (which must be spared, with what it
// references).
const leftovers = `*mangle
:KUBE-PROXY-CANARY - [0:0]
COMMIT
*filter
:KUBE-FORWARD - [0:0]
:KUBE-IPVS-FILTER - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-FIREWALL - [0:0]
:MY-CHAIN - [0:0]
-A INPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER
-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS
-A INPUT -m comment --comment "counts -j KUBE-NODEPORTS and -j KUBE-IPVS-FILTER traffic"
-A INPUT -j KUBE-FIREWALL
-A INPUT -j MY-CHAIN
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A MY-CHAIN -j KUBE-FORWARD
-A KUBE-IPVS-FILTER -m comment --comment "see -j KUBE-NODEPORTS" -j RETURN
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-SVC-A - [0:0]
:KUBE-SEP-A - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-LOAD-BALANCER - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -s 10.98.0.0/16 -j MASQUERADE
-A KUBE-SERVICES -d 172.30.0.1/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-A
-A KUBE-SVC-A -j KUBE-SEP-A
-A KUBE-SEP-A -s 10.180.0.1/32 -j KUBE-MARK-MASQ
-A KUBE-SEP-A -p tcp -j DNAT --to-destination 10.180.0.1:80
-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ
COMMIT
`

// kubeChains lists the KUBE-* chains of every table as "table/chain".
func kubeChains(f *ruleset.Fake) []string {
	var out []string
	for _, table := range []string{"mangle", "filter", "nat"} {
		for _, c := range f.Table(table).Chains {
			if strings.HasPrefix(c.Name, "KUBE-") {
				out = append(out, table+"/"+c.Name)
			}
		}
	}
	return out
}

func TestCleanupRemovesEachModesChainsOnly(t *testing.T) {
	tests := []struct {
		name    string
		cleanup func(context.Context, netfilter.Restorer) (int, error)
		removed int
		left    []string
	}{
		{"iptables mode", netfilter.CleanupIPTablesMode, 5, []string{"filter/KUBE-FIREWALL", "filter/KUBE-FORWARD",
			"filter/KUBE-IPVS-FILTER", "nat/KUBE-LOAD-BALANCER", "nat/KUBE-MARK-MASQ"}},
		// KUBE-MARK-MASQ is IPVS mode's too, but iptables mode's KUBE-SEP-A still jumps to it.
		{"IPVS mode", netfilter.CleanupIPVSMode, 3, []string{"mangle/KUBE-PROXY-CANARY", "filter/KUBE-FIREWALL", "filter/KUBE-FORWARD",
			"filter/KUBE-NODEPORTS", "nat/KUBE-SEP-A", "nat/KUBE-SVC-A", "nat/KUBE-MARK-MASQ"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := ruleset.NewFake(ruleset.FakeOptions{})
			if err := f.Restore(ctx, []byte(leftovers)); err != nil {
				t.Fatal(err)
			}
			n, err := tt.cleanup(ctx, f)
			if err != nil || n != tt.removed {
				t.Fatalf("cleanup = %d, %v; want %d chains removed", n, err, tt.removed)
			}
			want := slices.Clone(tt.left)
			slices.Sort(want)
			got := kubeChains(f)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("KUBE-* chains left %q, want %q", got, want)
			}
			filter := ruleset.FormatSave(f.Table("filter"))
			for _, keep := range []string{`-A INPUT -m comment --comment "counts -j KUBE-NODEPORTS and -j KUBE-IPVS-FILTER traffic"`,
				"-A INPUT -j MY-CHAIN", "-A MY-CHAIN -j KUBE-FORWARD", "-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD"} {
				if !strings.Contains(filter, keep+"\n") {
					t.Errorf("cleanup removed %q:\n%s", keep, filter)
				}
			}
			if nat := ruleset.FormatSave(f.Table("nat")); !strings.Contains(nat, "-A POSTROUTING -s 10.98.0.0/16 -j MASQUERADE\n") {
				t.Errorf("cleanup removed another program's nat rule:\n%s", nat)
			}
			// Cleaning again finds nothing and restores nothing.
			restores := f.RestoreCount()
			if n, err := tt.cleanup(ctx, f); n != 0 || err != nil || f.RestoreCount() != restores {
				t.Errorf("second cleanup = %d, %v, %d restores", n, err, f.RestoreCount()-restores)
			}
		})
	}
}

// TestCleanupIsAllOrNothing: when the kernel refuses the nat block, the
// filter and mangle blocks committed before it are rolled back.
func TestCleanupIsAllOrNothing(t *testing.T) {
	ctx := context.Background()
	f := ruleset.NewFake(ruleset.FakeOptions{})
	if err := f.Restore(ctx, []byte(leftovers)); err != nil {
		t.Fatal(err)
	}
	before := kubeChains(f)
	f.FailNextBlock("nat", 1)
	if _, err := netfilter.CleanupIPTablesMode(ctx, f); err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("cleanup = %v, want the nat failure with the earlier tables rolled back", err)
	}
	if got := kubeChains(f); !slices.Equal(got, before) {
		t.Errorf("chains after the failed cleanup %q, want %q", got, before)
	}
}
