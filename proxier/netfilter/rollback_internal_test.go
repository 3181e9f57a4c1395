package netfilter

import (
	"maps"
	"slices"
	"testing"
)

func TestTouchedChains(t *testing.T) {
	tests := []struct {
		block string
		want  []string
		all   bool
	}{
		{block: ":KUBE-SERVICES - [0:0]\n:INPUT ACCEPT [0:0]\n", want: []string{"INPUT", "KUBE-SERVICES"}},
		{block: "-A A -j B\n-I INPUT 1 -j A\n-D FORWARD -s 10.0.0.1/32 -j ACCEPT\n-R C 1 -j RETURN\n", want: []string{"A", "C", "FORWARD", "INPUT"}},
		{block: "--append A -j B\n--insert I 1 -j A\n-N NEW\n-X OLD\n-F FLUSHED\n-P OUTPUT DROP\n", want: []string{"A", "FLUSHED", "I", "NEW", "OLD", "OUTPUT"}},
		{block: "-E OLD NEW\n", want: []string{"NEW", "OLD"}},
		{block: "-S\n# comment\n\n-Z\n", want: nil},
		{block: "-F\n:A - [0:0]\n", want: []string{"A"}, all: true},
		{block: "-X -w\n", all: true},
	}
	for _, tt := range tests {
		touched := map[string]bool{}
		all := touchedChains([]byte(tt.block), touched)
		if got := slices.Sorted(maps.Keys(touched)); !slices.Equal(got, tt.want) || all != tt.all {
			t.Errorf("touchedChains(%q) = %q, all %v; want %q, all %v", tt.block, got, all, tt.want, tt.all)
		}
	}
}

func TestSplitRestoreBlocks(t *testing.T) {
	in := "# Generated\n*filter\n:A - [0:0]\nCOMMIT\n*nat\n# nothing\nCOMMIT\n*mangle\n-A X -m comment --comment \"\\nCOMMIT\" -j Y\nCOMMIT\n"
	blocks, ok := splitRestoreBlocks([]byte(in))
	if !ok || len(blocks) != 3 {
		t.Fatalf("split = %+v, %v", blocks, ok)
	}
	want := []struct {
		table   string
		changes bool
	}{{"filter", true}, {"nat", false}, {"mangle", true}}
	for i, w := range want {
		if blocks[i].table != w.table || blocks[i].changes != w.changes {
			t.Errorf("block %d = %s changes %v, want %s %v", i, blocks[i].table, blocks[i].changes, w.table, w.changes)
		}
	}
	for _, bad := range []string{"*filter\n:A - [0:0]\n", ":A - [0:0]\nCOMMIT\n", "*filter\nCOMMIT"} {
		if _, ok := splitRestoreBlocks([]byte(bad)); ok {
			t.Errorf("split accepted %q", bad)
		}
	}
}
