package iptables

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

func TestWantsListPrefix(t *testing.T) {
	for _, tc := range []struct {
		declared, existing int
		want               bool
	}{
		{declared: 10, existing: 0, want: false},
		{declared: 11000, existing: 4, want: true},
		{declared: 11000, existing: 11000, want: false},
		{declared: 2000, existing: 499, want: true},
		{declared: 2000, existing: 500, want: false},
	} {
		if got := wantsListPrefix(tc.declared, tc.existing); got != tc.want {
			t.Errorf("wantsListPrefix(%d, %d) = %v, want %v", tc.declared, tc.existing, got, tc.want)
		}
	}
}

func TestListPrefixGoesIntoFirstBlockAndInsertsIntoTheirOwn(t *testing.T) {
	g := &Rendering{out: new(bytes.Buffer), tables: []*tableText{
		{name: "filter", chains: []chainText{{name: "KUBE-SERVICES"}}},
		{name: "nat", chains: []chainText{{name: "KUBE-SERVICES", rules: []byte("-A KUBE-SERVICES -j RETURN\n")}},
			inserts: []string{"-I OUTPUT 1 -j KUBE-SERVICES"}},
	}}
	g.table("nat").deleteChain("KUBE-SVC-OLD")
	moveInsertsToOwnBlock(g, []string{"nat"})
	markListPrefix(g, []string{"nat"})
	got := string(g.Bytes())
	want := "*filter\n:KUBE-SERVICES - [0:0]\nCOMMIT\n" +
		"*nat\n-S\n:KUBE-SVC-OLD - [0:0]\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -j RETURN\nCOMMIT\n" +
		"*nat\n-I OUTPUT 1 -j KUBE-SERVICES\n-X KUBE-SVC-OLD\nCOMMIT\n"
	if got != want {
		t.Errorf("input =\n%s\nwant\n%s", got, want)
	}
	g = &Rendering{out: new(bytes.Buffer), tables: []*tableText{{name: "nat"}}}
	markListPrefix(g, nil)
	if same := string(g.Bytes()); same != "*nat\nCOMMIT\n" {
		t.Errorf("input changed without prefixed tables: %q", same)
	}
}

// TestInterleavedInputBuildsTheSameTables applies a full rendering of 100
// NodePort services with and without the list prefix (which also writes each
// chain's declaration right before its rules) to the Fake, which, like
// iptables-restore, rejects a jump to a chain not declared yet.
func TestInterleavedInputBuildsTheSameTables(t *testing.T) {
	g := NewRenderer(testOptions()).Render(scaleWorld(100, 10).snap)
	plain := bytes.Clone(g.Bytes())
	markListPrefix(g, []string{"nat"})
	interleaved := bytes.Clone(g.Bytes())
	if !bytes.Contains(interleaved, []byte(":KUBE-SEP-")) || bytes.Equal(plain, interleaved) {
		t.Fatal("the prefixed rendering is not interleaved")
	}
	declared := map[string]bool{}
	for _, line := range bytes.Split(interleaved, []byte("\n")) {
		f := strings.Fields(string(line))
		switch {
		case len(f) > 0 && strings.HasPrefix(f[0], ":"):
			declared[f[0][1:]] = true
		case len(f) > 1 && f[0] == "-A" && strings.HasPrefix(f[1], "KUBE-") && !declared[f[1]]:
			t.Fatalf("rule before its chain is declared: %s", line)
		}
	}
	var saves [2][]byte
	for i, data := range [][]byte{plain, interleaved} {
		fake := ruleset.NewFake(ruleset.FakeOptions{})
		if err := fake.Restore(context.Background(), data); err != nil {
			t.Fatalf("restore input %d: %v", i, err)
		}
		out, err := fake.Save(context.Background(), "nat")
		if err != nil {
			t.Fatal(err)
		}
		saves[i] = out
	}
	if !bytes.Equal(saves[0], saves[1]) {
		t.Errorf("interleaved input builds a different nat table")
	}
}

func TestRuleEdits(t *testing.T) {
	lines := func(ids ...int) []byte {
		var b bytes.Buffer
		for _, id := range ids {
			fmt.Fprintf(&b, "-A C -d 10.0.0.%d -j X\n", id)
		}
		return b.Bytes()
	}
	seq := func(from, to int) []int {
		var out []int
		for i := from; i < to; i++ {
			out = append(out, i)
		}
		return out
	}
	base := seq(0, 100)
	for _, tc := range []struct {
		name      string
		old, next []int
		want      []string // nil: declined
	}{
		{"short chains are rewritten", seq(0, 10), seq(1, 10), nil},
		{"one removed, one added", base, append(append(seq(0, 5), seq(6, 100)...), 200),
			[]string{"-D C -d 10.0.0.5 -j X", "-I C 100 -d 10.0.0.200 -j X"}},
		{"added first", base, append([]int{200}, base...), []string{"-I C 1 -d 10.0.0.200 -j X"}},
		{"reordered", base, append(seq(1, 100), 0), nil},
		{"duplicate rule", append(seq(0, 99), 0), base, nil},
		{"too many edits", base, seq(70, 200), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ruleEdits("C", lines(tc.old...), lines(tc.next...))
			if tc.want == nil {
				if ok {
					t.Errorf("ruleEdits = %q, want declined", got)
				}
				return
			}
			if !ok || !slices.Equal(got, tc.want) {
				t.Errorf("ruleEdits = %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
}
