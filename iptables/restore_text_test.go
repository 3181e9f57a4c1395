package iptables

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

func TestListPrefixGoesIntoFirstBlockAndInsertsIntoTheirOwn(t *testing.T) {
	p := &restorePlan{blocks: []*tableText{
		{name: "filter", chains: []chainText{{name: "KUBE-SERVICES"}}},
		{name: "nat", chains: []chainText{{name: "KUBE-SERVICES", rules: []byte("-A KUBE-SERVICES -j RETURN\n")}, {name: "KUBE-SVC-OLD"}},
			inserts: []string{"-I OUTPUT 1 -j KUBE-SERVICES"}, deletes: []string{"KUBE-SVC-OLD"}},
	}}
	p.prefixTables([]string{"nat"})
	got := string(writeBlocks(new(bytes.Buffer), p.blocks))
	want := "*filter\n:KUBE-SERVICES - [0:0]\nCOMMIT\n" +
		"*nat\n-S\n:KUBE-SVC-OLD - [0:0]\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -j RETURN\nCOMMIT\n" +
		"*nat\n-I OUTPUT 1 -j KUBE-SERVICES\n-X KUBE-SVC-OLD\nCOMMIT\n"
	if got != want {
		t.Errorf("input =\n%s\nwant\n%s", got, want)
	}
	p = &restorePlan{blocks: []*tableText{{name: "nat"}}}
	p.prefixTables(nil)
	if same := string(writeBlocks(new(bytes.Buffer), p.blocks)); same != "*nat\nCOMMIT\n" {
		t.Errorf("input changed without prefixed tables: %q", same)
	}
}

// TestInterleavedInputBuildsTheSameTables applies a full rendering of 100
// NodePort services with and without the list prefix (which also writes each
// chain's declaration right before its rules) to the Fake, which, like
// iptables-restore, rejects a jump to a chain not declared yet.
func TestInterleavedInputBuildsTheSameTables(t *testing.T) {
	g := NewRenderer(testOptions()).Render(scaleWorld(t, 100, 10).Snapshot())
	plain := bytes.Clone(g.Bytes())
	p := &restorePlan{}
	for _, t := range g.view().tables {
		p.blocks = append(p.blocks, &tableText{name: t.name, chains: slices.Clone(t.chains)})
	}
	p.prefixTables([]string{"nat"})
	interleaved := writeBlocks(new(bytes.Buffer), p.blocks)
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
