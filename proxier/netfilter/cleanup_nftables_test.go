package netfilter_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"

	"github.com/kproxy/kproxy/proxier/netfilter"
)

// nftTable names one table as "family name".
type nftTable struct {
	family knftables.Family
	name   string
}

func (t nftTable) String() string { return string(t.family) + " " + t.name }

var (
	kubeProxyIPv4 = nftTable{knftables.IPv4Family, "kube-proxy"}
	kubeProxyIPv6 = nftTable{knftables.IPv6Family, "kube-proxy"}
	// inet kube-proxy is not upstream's (its tables are ip and ip6): another program's.
	inetKubeProxy = nftTable{knftables.InetFamily, "kube-proxy"}
	otherIPv4     = nftTable{knftables.IPv4Family, "firewalld"}
)

// nftWith returns a Fake without default table holding tables, each laid
// out as upstream's nftables mode lays out its own: a base chain, a
// service chain, a set and a verdict map whose element jumps to the chain.
func nftWith(t *testing.T, tables ...nftTable) *knftables.Fake {
	t.Helper()
	fake := knftables.NewFake("", "")
	tx := fake.NewTransaction()
	for _, tb := range tables {
		f, n := tb.family, tb.name
		addr, ip := "ipv4_addr", "172.30.0.41"
		if f == knftables.IPv6Family {
			addr, ip = "ipv6_addr", "fd00::41"
		}
		tx.Add(&knftables.Table{Family: f, Name: n, Comment: knftables.PtrTo("rules for kube-proxy")})
		tx.Add(&knftables.Chain{Family: f, Table: n, Name: "nat-prerouting",
			Type: knftables.PtrTo(knftables.NATType), Hook: knftables.PtrTo(knftables.PreroutingHook),
			Priority: knftables.PtrTo(knftables.DNATPriority)})
		tx.Add(&knftables.Chain{Family: f, Table: n, Name: "service-ULMVA6XW-ns1/svc1/tcp/p80"})
		tx.Add(&knftables.Set{Family: f, Table: n, Name: "cluster-ips", Type: addr})
		tx.Add(&knftables.Map{Family: f, Table: n, Name: "service-ips",
			Type: addr + " . inet_proto . inet_service : verdict"})
		tx.Add(&knftables.Element{Family: f, Table: n, Map: "service-ips",
			Key:   []string{ip, "tcp", "80"},
			Value: []string{"goto service-ULMVA6XW-ns1/svc1/tcp/p80"}})
	}
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatalf("build fake nftables: %v", err)
	}
	return fake
}

// tablesIn lists the fake's tables as "family name", sorted.
func tablesIn(fake *knftables.Fake) []string {
	var out []string
	for family, tables := range fake.Tables {
		for name := range tables {
			out = append(out, nftTable{family, name}.String())
		}
	}
	slices.Sort(out)
	return out
}

func names(tables ...nftTable) []string {
	out := []string{}
	for _, tb := range tables {
		out = append(out, tb.String())
	}
	slices.Sort(out)
	return out
}

func TestCleanupNFTablesMode(t *testing.T) {
	cases := []struct {
		name    string
		before  []nftTable
		removed int
		after   []nftTable
	}{
		{"both families, other tables kept", []nftTable{kubeProxyIPv4, kubeProxyIPv6, inetKubeProxy, otherIPv4},
			2, []nftTable{inetKubeProxy, otherIPv4}},
		{"IPv6 only: the missing IPv4 table is no error", []nftTable{kubeProxyIPv6, otherIPv4}, 1, []nftTable{otherIPv4}},
		{"IPv4 only", []nftTable{kubeProxyIPv4}, 1, nil},
		{"nothing of nftables mode", []nftTable{inetKubeProxy, otherIPv4}, 0, []nftTable{inetKubeProxy, otherIPv4}},
		{"no tables at all", nil, 0, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := nftWith(t, tc.before...)
			removed, err := netfilter.CleanupNFTablesMode(context.Background(), fake)
			if err != nil {
				t.Fatalf("cleanup: %v", err)
			}
			if removed != tc.removed {
				t.Errorf("removed %d tables, want %d", removed, tc.removed)
			}
			if got, want := tablesIn(fake), names(tc.after...); !slices.Equal(got, want) {
				t.Errorf("tables after cleanup: %v, want %v", got, want)
			}
		})
	}
}

// TestCleanupNFTablesModeIsIdempotent: a second run finds nothing and says so.
func TestCleanupNFTablesModeIsIdempotent(t *testing.T) {
	fake := nftWith(t, kubeProxyIPv4, kubeProxyIPv6)
	for i, want := range []int{2, 0} {
		removed, err := netfilter.CleanupNFTablesMode(context.Background(), fake)
		if err != nil || removed != want {
			t.Errorf("run %d: removed %d, %v; want %d, nil", i+1, removed, err, want)
		}
	}
}

// failingNFT refuses to delete the tables of one family with a kernel
// error other than "not found" (EPERM, EBUSY: an owner flag, a missing
// capability).
type failingNFT struct {
	*knftables.Fake
	family knftables.Family
}

func (f failingNFT) Run(ctx context.Context, tx *knftables.Transaction) error {
	if strings.Contains(tx.String(), "table "+string(f.family)+" ") {
		return errors.New("Error: Could not process rule: Operation not permitted")
	}
	return f.Fake.Run(ctx, tx)
}

// TestCleanupNFTablesModeGoesOnAfterAnError: one family's failure is
// reported with the table it concerns and does not keep the other
// family's table from being deleted.
func TestCleanupNFTablesModeGoesOnAfterAnError(t *testing.T) {
	fake := nftWith(t, kubeProxyIPv4, kubeProxyIPv6)
	removed, err := netfilter.CleanupNFTablesMode(context.Background(), failingNFT{fake, knftables.IPv4Family})
	if err == nil || !strings.Contains(err.Error(), "delete table ip kube-proxy") ||
		!strings.Contains(err.Error(), "Operation not permitted") {
		t.Errorf("error %v, want one naming table ip kube-proxy and the kernel's reason", err)
	}
	if removed != 1 {
		t.Errorf("removed %d, want 1 (the IPv6 table)", removed)
	}
	if got, want := tablesIn(fake), names(kubeProxyIPv4); !slices.Equal(got, want) {
		t.Errorf("tables after cleanup: %v, want %v", got, want)
	}
}

// TestCleanupNFTablesModeRefusesABoundInterface: an Interface bound to
// another table must not be used to delete kube-proxy's tables (knftables
// refuses to override its default), so the cleanup fails instead of
// deleting something else.
func TestCleanupNFTablesModeRefusesABoundInterface(t *testing.T) {
	fake := knftables.NewFake(knftables.IPv4Family, "firewalld")
	tx := fake.NewTransaction()
	tx.Add(&knftables.Table{})
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatal(err)
	}
	if _, err := netfilter.CleanupNFTablesMode(context.Background(), fake); err == nil {
		t.Error("cleanup through an Interface bound to ip firewalld succeeded; want an error")
	}
	if got := tablesIn(fake); !slices.Equal(got, []string{"ip firewalld"}) {
		t.Errorf("tables after cleanup: %v, want [ip firewalld]", got)
	}
}
