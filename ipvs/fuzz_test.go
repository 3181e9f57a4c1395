package ipvs_test

import (
	"path/filepath"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/ipvs"
	"github.com/kproxy/kproxy/ipvs/ipset"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/test/objectfuzz"
)

// FuzzObjectToIPVS is IPVS mode's half of the object fuzzer (iptables'
// FuzzObjectToRules is the other): object → validation (or none) →
// tracker → IPVS desired state for both families. Invariants: no panic, and
// every ipset member is in the canonical form ipset lists, which the
// reconciler's diff against the kernel relies on. Its seeds are the shared
// seeds plus every entry of the checked-in corpus (objectfuzz.CorpusDir),
// so the inputs the iptables fuzzer found are checked here too.
func FuzzObjectToIPVS(f *testing.F) {
	cases, err := objectfuzz.ReadCorpus(filepath.Join("..", objectfuzz.CorpusDir))
	if err != nil || len(cases) < 20 {
		f.Fatalf("corpus %s: %d entries, %v", objectfuzz.CorpusDir, len(cases), err)
	}
	objectfuzz.Fuzz(f, valuesOf(cases), func(t *testing.T, c objectfuzz.Case) {
		svc, slice := c.Objects()
		for _, validated := range []bool{true, false} {
			for _, snap := range objectfuzz.Snapshots(svc, slice, validated) {
				checkIPVS(t, snap)
			}
		}
	})
}

// valuesOf lists the corpus entries in a stable order (by file name).
func valuesOf(cases map[string]objectfuzz.Case) []objectfuzz.Case {
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]objectfuzz.Case, len(names))
	for i, n := range names {
		out[i] = cases[n]
	}
	return out
}

// checkIPVS builds IPVS mode's desired state and ipset members: every
// member must be in the canonical form ipset lists.
func checkIPVS(t *testing.T, snap *proxier.Snapshot) {
	nodeIPs := snap.Node.IPs
	_ = ipvs.BuildDesired(snap, ipvs.BuildOptions{NodePortIPs: nodeIPs})
	sets := ipvs.BuildDesiredSets(snap, ipvs.SetMemberOptions{NodePortIPs: nodeIPs})
	bases := ipset.Specs(v1.IPv4Protocol)
	for i, spec := range ipset.Specs(sets.Family) {
		for _, m := range sets.Members[bases[i].Name] {
			if canon, err := ipset.CanonicalEntry(spec.Type, sets.Family, m); err != nil || canon != m {
				t.Fatalf("%s member %q is not canonical: %q, %v", spec.Name, m, canon, err)
			}
		}
	}
}

// TestFuzzBaselineBuildsIPVSState keeps the harness honest: the valid
// baseline gives virtual servers and ipset members to check.
func TestFuzzBaselineBuildsIPVSState(t *testing.T) {
	svc, slice := objectfuzz.Seeds()[0].Objects()
	snap := objectfuzz.Snapshots(svc, slice, true)[0]
	desired := ipvs.BuildDesired(snap, ipvs.BuildOptions{NodePortIPs: snap.Node.IPs})
	sets := ipvs.BuildDesiredSets(snap, ipvs.SetMemberOptions{NodePortIPs: snap.Node.IPs})
	members := 0
	for _, m := range sets.Members {
		members += len(m)
	}
	if len(desired.Servers) == 0 || members == 0 {
		t.Fatalf("baseline: %d virtual servers, %d ipset members; the invariants would check nothing",
			len(desired.Servers), members)
	}
}
