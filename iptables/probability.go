package iptables

import "strconv"

// probabilities caches upstream's per-endpoint "--probability" strings: 1/n
// printed with exactly ten fractional digits (printf "%.10f"). The cache lives
// in a Renderer, never in a package variable.
type probabilities struct {
	values []string // values[n] = 1/n; values[0] unused
}

// get returns the probability text for the i-th of n remaining endpoints (1/n).
func (p *probabilities) get(n int) string {
	if n < len(p.values) {
		return p.values[n]
	}
	if len(p.values) == 0 {
		p.values = make([]string, 1, 1001)
		p.values[0] = "<bad value>"
	}
	for i := len(p.values); i <= n; i++ {
		p.values = append(p.values, computeProbability(i))
	}
	return p.values[n]
}

func computeProbability(n int) string {
	return strconv.FormatFloat(1.0/float64(n), 'f', 10, 64)
}
