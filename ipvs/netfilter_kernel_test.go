package ipvs_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/ipvs"
	"github.com/kproxy/kproxy/ipvs/addresses"
	"github.com/kproxy/kproxy/ipvs/ipset"
	"github.com/kproxy/kproxy/ipvs/rules"
	"github.com/kproxy/kproxy/ipvs/vs"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/xtables"
	pt "github.com/kproxy/kproxy/proxier/proxiertest"
)

// TestKernelIPSetAndRules syncs the ipsets with the real ipset and loads
// the IPVS-mode rules with iptables-restore in a fresh network namespace
// (in the qemu guest, see test/vm/ipvs_test.go): the kernel accepts what
// the renderer writes for the sets a snapshot fills, and repeated applies
// never duplicate the jump rules. (ipset's own differential test against
// the Fake is ipset.TestKernelIPSetAgreesWithTheFake.)
func TestKernelIPSetAndRules(t *testing.T) {
	ns := newSetsNS(t)
	ctx := context.Background()
	prefix := []string{"ip", "netns", "exec", ns.name}
	kernelSets := ipset.NewExec(ipset.ExecOptions{Command: append(slices.Clone(prefix), "ipset")})

	runner, err := xtables.New(xtables.Options{CommandPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	syncer := ipset.NewSyncer(ipset.SyncerOptions{IPSet: kernelSets, Family: v1.IPv4Protocol})
	applier := rules.NewApplier(runner)
	node := ipvs.SetMemberOptions{NodeIP: addr(nodeIP), NodePortIPs: addrs(nodeIP), Bound: addrs("172.30.0.1", "172.30.0.2")}
	opts := rules.Options{MasqueradeMark: mark, LocalDetector: clusterCIDRDetector(), RandomFully: true}
	rich := []entry{
		e(svc("a", "172.30.0.1", pt.NodePort(30080), lbLocal("198.51.100.9", 31000)), ep("10.1.0.1", local())),
		e(svc("b", "172.30.0.2", pt.LoadBalancer("198.51.100.7"), pt.SourceRanges("203.0.113.0/24", "192.168.1.0/24"))),
		e(svc("c", "172.30.0.3", pt.LoadBalancer("198.51.100.8"), pt.SourceRanges("203.0.113.0/24"))),
		e(svcPort("d", "172.30.0.4", v1.ProtocolSCTP, 80, 8080, pt.NodePort(30132), pt.ExternalIPs("203.0.113.1"))),
		e(svcPort("f", "172.30.0.5", v1.ProtocolUDP, 80, 8080, pt.NodePort(30053), pt.ExternalIPs("203.0.113.2"), pt.ExternalLocal())),
	}
	// Two worlds, so that each snapshot stays valid.
	richSnap, small := snapshot(t, rich...), snapshot(t, e(svc("b", "172.30.0.2")))

	for i, snap := range []*proxier.Snapshot{richSnap, small, richSnap} {
		want := ipvs.BuildDesiredSets(snap, node)
		if _, _, err := syncer.Sync(ctx, want.Members, i == 0); err != nil {
			t.Fatalf("sync %d: %v", i, err)
		}
		assertKernelSets(t, ctx, kernelSets, want)
		r := rules.Render(want.RulesInput(), opts)
		if err := applier.Apply(ctx, r); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
		assertKernelRules(t, ns, r)
	}

	// The proxier's partial syncs write only deltas (and no rules when they
	// are unchanged): the kernel must end up where BuildDesiredSets says.
	t.Run("partial syncs through the proxier", func(t *testing.T) {
		p, err := ipvs.New(ipvs.Options{Handle: vs.NewFake(vs.FakeOptions{}), Addresses: addresses.NewFake(addrs("127.0.0.1", nodeIP)...),
			NodePorts: netfilter.NodePortMatch{All: true},
			Netfilter: &ipvs.NetfilterOptions{IPSet: kernelSets, Restorer: runner, NodeIP: addr(nodeIP), Rules: opts}})
		if err != nil {
			t.Fatal(err)
		}
		lb := e(svc("b", "172.30.0.2", pt.LoadBalancer("198.51.100.7"), pt.SourceRanges("203.0.113.0/24")), ep("10.1.0.7", local()))
		// From rich to lb alone and back: partial syncs changing every
		// port (d and f are SCTP and UDP ones).
		m := newModel(t, v1.IPv4Protocol)
		for i, state := range [][]entry{rich, {lb}, rich} {
			snap := m.next(state...)
			if _, err := p.Sync(ctx, snap); err != nil {
				t.Fatalf("sync %d: %v", i, err)
			}
			bind := ipvs.BuildDesired(snap, ipvs.BuildOptions{LocalAddresses: addrs("127.0.0.1", nodeIP)}).Bind
			want := ipvs.BuildDesiredSets(snap, ipvs.SetMemberOptions{NodeIP: addr(nodeIP), NodePortIPs: addrs(nodeIP), Bound: bind})
			assertKernelSets(t, ctx, kernelSets, want)
			assertKernelRules(t, ns, rules.Render(want.RulesInput(), opts))
		}
	})
}

func assertKernelSets(t *testing.T, ctx context.Context, s ipset.Interface, want *ipvs.DesiredSets) {
	t.Helper()
	got, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range ipset.Specs(v1.IPv4Protocol) {
		g := got[spec.Name]
		if g == nil {
			t.Errorf("set %s missing in the kernel", spec.Name)
			continue
		}
		if g.Spec.Type != spec.Type || !slices.Equal(g.Members, want.Members[spec.Name]) &&
			!(len(g.Members) == 0 && len(want.Members[spec.Name]) == 0) {
			t.Errorf("%s: kernel %s %q, want %s %q", spec.Name, g.Spec.Type, g.Members, spec.Type, want.Members[spec.Name])
		}
	}
}

// assertKernelRules checks, from iptables-save, that each IPVS-mode chain
// holds as many rules as rendered and each jump rule is there exactly once.
func assertKernelRules(t *testing.T, ns *kernelNS, r *rules.Rules) {
	t.Helper()
	for table, rendered := range map[string][]string{"nat": r.NAT, "filter": r.Filter} {
		saved := ns.exec("iptables-save", "-t", table)
		want, got := map[string]int{}, map[string]int{}
		for _, l := range rendered {
			want[strings.Fields(l)[1]]++
		}
		lines := strings.Split(saved, "\n")
		for _, l := range lines {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "-A" && strings.HasPrefix(f[1], "KUBE-") {
				got[f[1]]++
			}
		}
		if !maps.Equal(got, want) {
			t.Errorf("%s rules per chain: kernel %v, rendered %v\n%s", table, got, want, saved)
		}
		for _, j := range netfilter.IPVSJumpRules() {
			if j.Table == table {
				if n := slices.Index(lines, j.SaveLine()); n < 0 || slices.Contains(lines[n+1:], j.SaveLine()) {
					t.Errorf("jump %q is not in %s exactly once", j.SaveLine(), table)
				}
			}
		}
	}
}

// newSetsNS is a fresh network namespace with lo up, for tests that need
// netfilter and ipset but neither IPVS nor a dummy device (the host
// kernel of some developers has no dummy module); the same gating as
// newKernelNS applies.
func newSetsNS(t *testing.T) *kernelNS {
	t.Helper()
	return newGuestNS(t, "kpx-sets-", "ipset/iptables kernel test", "")
}
