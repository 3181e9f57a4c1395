package iptables

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
)

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
