package iptables

import (
	"bytes"
	"strconv"
)

// Rule-level edits replace rewriting a long top-level chain (KUBE-SERVICES
// of 10k services is 1.7 s to flush and refill at 10k services) when only a
// few of its rules changed.
const (
	editMinRules = 64
	editMaxEdits = 64
)

// ruleEdits turns old → new chain text into "-D CHAIN rule" and
// "-I CHAIN n rule" lines, deletions first, then insertions in ascending
// final position. It declines (false) for short chains, many edits,
// duplicate rules or reordered rules, where a rewrite is as cheap or required.
func ruleEdits(chain string, old, next []byte) ([]string, bool) {
	o, n := splitRuleLines(old), splitRuleLines(next)
	if len(o) < editMinRules || len(n) < editMinRules {
		return nil, false
	}
	inOld, okOld := lineSet(o)
	inNew, okNew := lineSet(n)
	if !okOld || !okNew {
		return nil, false
	}
	var dels, ins []string
	i, j := 0, 0
	for i < len(o) || j < len(n) {
		switch {
		case len(dels)+len(ins) > editMaxEdits:
			return nil, false
		case i < len(o) && j < len(n) && o[i] == n[j]:
			i, j = i+1, j+1
		case i < len(o) && !inNew[o[i]]:
			dels = append(dels, "-D"+o[i][2:])
			i++
		case j < len(n) && !inOld[n[j]]:
			ins = append(ins, "-I "+chain+" "+strconv.Itoa(j+1)+n[j][len("-A "+chain):])
			j++
		default: // the same rules in another order
			return nil, false
		}
	}
	return append(dels, ins...), true
}

func splitRuleLines(b []byte) []string {
	var out []string
	for line := range bytes.Lines(b) {
		out = append(out, string(bytes.TrimSuffix(line, []byte("\n"))))
	}
	return out
}

// lineSet indexes lines; false if a line repeats.
func lineSet(lines []string) (map[string]bool, bool) {
	m := make(map[string]bool, len(lines))
	for _, l := range lines {
		if m[l] {
			return nil, false
		}
		m[l] = true
	}
	return m, true
}
