package iptables_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/iptables"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
	"github.com/kproxy/kproxy/test/objectfuzz"
)

// FuzzObjectToRules drives object → validation → tracker → render for both
// families. Invariants: no panic; what validation accepts with a cluster
// IP of a family is programmed; every rendered input is accepted by the
// Fake (which refuses what iptables-restore refuses), also when validation
// is bypassed; every rule stays in KUBE-* chains; comments are safe and
// survive iptables-save and restore. The checked-in corpus is also applied
// with the real iptables-restore by TestFuzzCorpusInKernel, and checked
// against IPVS mode's invariants by ipvs' FuzzObjectToIPVS.
func FuzzObjectToRules(f *testing.F) {
	objectfuzz.Fuzz(f, nil, func(t *testing.T, c objectfuzz.Case) { checkCase(t, c, nil) })
}

var families = objectfuzz.Families

// checkCase runs the invariants; apply, when set, also hands each rendered
// input to a real restorer of its family.
func checkCase(t *testing.T, c objectfuzz.Case, apply func(family v1.IPFamily, input []byte) error) {
	svc, slice := c.Objects()
	for _, validated := range []bool{true, false} {
		snaps := objectfuzz.Snapshots(svc, slice, validated)
		if fam := objectfuzz.UnprogrammedValidService(svc, snaps); validated && fam != "" {
			t.Fatalf("%s: valid Service %q/%q has a cluster IP of the family but no service port", fam, svc.Namespace, svc.Name)
		}
		for i, fam := range families {
			input := checkRender(t, fam, snaps[i], validated)
			if apply != nil {
				if err := apply(fam, input); err != nil {
					t.Fatalf("%s (validated=%v): iptables-restore refused what the Fake accepted: %v\n%s", fam, validated, err, input)
				}
			}
		}
	}
}

func checkRender(t *testing.T, fam v1.IPFamily, snap *proxier.Snapshot, validated bool) []byte {
	opts := iptables.RenderOptions{Family: fam, MasqueradeMark: "0x00004000", LocalhostNodePorts: true,
		LocalDetector: netfilter.LocalDetector{IfLocal: []string{"-s", "10.0.0.0/8"}, IfNotLocal: []string{"!", "-s", "10.0.0.0/8"}}}
	if fam == v1.IPv6Protocol {
		opts.LocalDetector = netfilter.LocalDetector{IfLocal: []string{"-s", "fd00::/8"}, IfNotLocal: []string{"!", "-s", "fd00::/8"}}
	}
	input := append([]byte(nil), iptables.Render(snap, opts).Bytes()...)
	fake := ruleset.NewFake(ruleset.FakeOptions{Family: fam})
	if err := fake.Restore(context.Background(), input); err != nil {
		t.Fatalf("%s (validated=%v): the Fake refused the rendering: %v\n%s", fam, validated, err, input)
	}
	for name, table := range fake.Tables() {
		for _, ch := range table.Chains {
			if len(ch.Rules) > 0 && !strings.HasPrefix(ch.Name, "KUBE-") {
				t.Fatalf("%s: %d rules in %s %s, outside KUBE-*", fam, len(ch.Rules), name, ch.Name)
			}
			checkComments(t, fam, fake, name, ch)
		}
	}
	return input
}

// checkComments requires safe comments that read back the same through
// iptables-save's quoting.
func checkComments(t *testing.T, fam v1.IPFamily, fake *ruleset.Fake, table string, ch *ruleset.Chain) {
	if len(ch.Rules) == 0 {
		return
	}
	saved := fmt.Sprintf("*%s\n:%s - [0:0]\n", table, ch.Name)
	for i := range ch.Rules {
		c := ch.Rules[i].Comment()
		if !utf8.ValidString(c) || len(c) > iptables.MaxCommentLen || strings.ContainsAny(c, "\x00\n\r\t\x1b\x7f") {
			t.Fatalf("%s %s: unsafe comment %q", table, ch.Name, c)
		}
		saved += "-A " + ch.Name + " " + ch.Rules[i].SaveLine() + "\n"
	}
	script, err := ruleset.ParseRestore([]byte(saved+"COMMIT\n"), fam)
	if err != nil {
		t.Fatalf("iptables-save output of %s does not parse: %v\n%s", ch.Name, err, saved)
	}
	for i, st := range script.Tables[0].Statements[1:] {
		if got, want := st.Rule.Comment(), ch.Rules[i].Comment(); got != want {
			t.Fatalf("%s %s: comment %q reads back as %q", table, ch.Name, want, got)
		}
	}
}

// TestFuzzBaselineIsProgrammed keeps the fuzz harness honest: its valid
// baseline is programmed in both families, so the invariants above look at
// real rules.
func TestFuzzBaselineIsProgrammed(t *testing.T) {
	svc, slice := objectfuzz.Seeds()[0].Objects()
	for i, snap := range objectfuzz.Snapshots(svc, slice, true) {
		if snap.Len() != 1 {
			t.Fatalf("%s: %d service ports, want 1", families[i], snap.Len())
		}
		for name := range snap.All() {
			if eps := snap.Endpoints(name); i == 0 && len(eps.All) != 2 {
				t.Errorf("IPv4 endpoints %v, want 2", eps.All)
			}
		}
		out := string(checkRender(t, families[i], snap, true))
		want := []string{"KUBE-SVC-", "KUBE-EXT-", "KUBE-FW-", "-A KUBE-NODEPORTS"}
		if families[i] == v1.IPv6Protocol { // the slice is IPv4
			want = []string{`--comment "ns1/svc1:http has no endpoints"`}
		}
		for _, want := range want {
			if !strings.Contains(out, want) {
				t.Errorf("%s: rendering lacks %s", families[i], want)
			}
		}
	}
}
