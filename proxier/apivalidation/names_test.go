package apivalidation

import (
	"math/rand/v2"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

// TestNameChecksMatchApimachinery compares the hand-written checks with
// apimachinery's on edge cases and random strings over the relevant bytes.
func TestNameChecksMatchApimachinery(t *testing.T) {
	cases := []string{"", "a", "-", "a-", "-a", "a-b", "A", "a.b", "a..b", ".a", "a.", "0", "9a", "a_b", "_a",
		"a b", "é", "a\x00", strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a.", 126) + "a",
		strings.Repeat("a", 253), strings.Repeat("a", 254), "ns/svc", `a"b`, "a\nb", "Ab-C_d.E", "x-.y", "x.-y"}
	alphabet := "aZ0-._ \"/\n\xffé"
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		n := rng.IntN(12)
		var b strings.Builder
		for range n {
			b.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		cases = append(cases, b.String())
	}
	for _, s := range cases {
		if got, want := isDNS1123Label(s), len(validation.IsDNS1123Label(s)) == 0; got != want {
			t.Errorf("isDNS1123Label(%q) = %v, apimachinery says %v", s, got, want)
		}
		if got, want := isDNS1123Subdomain(s), len(validation.IsDNS1123Subdomain(s)) == 0; got != want {
			t.Errorf("isDNS1123Subdomain(%q) = %v, apimachinery says %v", s, got, want)
		}
		if got, want := isLabelValue(s), len(validation.IsValidLabelValue(s)) == 0; got != want {
			t.Errorf("isLabelValue(%q) = %v, apimachinery says %v", s, got, want)
		}
	}
}
