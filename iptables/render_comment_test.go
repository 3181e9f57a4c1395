package iptables

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
	pt "github.com/kproxy/kproxy/proxier/proxiertest"
)

// hostileNames are names no validated object has, used to prove that the
// renderer alone keeps every comment inside its rule.
var hostileNames = []string{
	`q"uote`, `back\slash`, `a b`, "new\nline", "car\rriage", "t\tab", "nul\x00byte",
	`-j ACCEPT`, `x" -j ACCEPT -m comment --comment "y`, "\n-A INPUT -j ACCEPT", `\"`, `"`, `\`,
	strings.Repeat("n", 300), strings.Repeat("é", 200), "bad\xff\xfeutf8", "esc\x1b[31m", "del\x7f", "c1\u009b",
	"", "'single'",
}

func TestCommentText(t *testing.T) {
	tests := []struct {
		parts []string
		want  string
	}{
		{[]string{"ns1/svc1:p80", " cluster IP"}, "ns1/svc1:p80 cluster IP"},
		{[]string{"a\nb", "\x00", "\t"}, "a?b??"},
		{[]string{`q"\`}, `q"\`},
		{[]string{"bad\xffutf8"}, "bad?utf8"},
		{[]string{"\xc3", "\xa9"}, "é"}, // a rune split across parts is still one rune
		{[]string{strings.Repeat("x", 300)}, strings.Repeat("x", 255)},
		{[]string{strings.Repeat("é", 200)}, strings.Repeat("é", 127)}, // 254 bytes: the next rune would cross 255
		{[]string{"c1\u009b"}, "c1?"},
	}
	for _, tt := range tests {
		if got := CommentText(tt.parts...); got != tt.want {
			t.Errorf("CommentText(%q) = %q, want %q", tt.parts, got, tt.want)
		}
	}
}

// TestHostileNamesStayInTheirComments renders service ports with hostile
// names built directly (no validation): the Fake, which tokenizes like
// iptables-restore, must accept the input, every rule must be in a KUBE-*
// chain, and every comment must read back as CommentText of what was written.
func TestHostileNamesStayInTheirComments(t *testing.T) {
	for _, name := range hostileNames {
		t.Run(strings.ToValidUTF8(name[:min(len(name), 20)], "?"), func(t *testing.T) {
			w := pt.NewWorld(t, pt.WorldOptions{Unvalidated: true})
			w.ApplyService(pt.Service("ns1", name, pt.ClusterIP("172.30.0.41"), pt.Port(name, v1.ProtocolTCP, 80), pt.NodePort(3001),
				pt.LoadBalancer("1.2.3.4"), pt.SourceRanges("10.0.0.0/8"), pt.ExternalIPs("192.168.99.1")),
				pt.Endpoint("10.180.0.1"), pt.Endpoint("10.180.0.2"))
			w.Apply(pt.Service("ns1", name+"-none", pt.ClusterIP("172.30.0.42"), pt.Port(name, v1.ProtocolTCP, 80), pt.NodePort(3002)))
			snap := w.Snapshot()
			if snap.Len() != 2 {
				t.Fatalf("%d service ports, want both Services'", snap.Len())
			}
			input := Render(snap, testOptions()).Bytes()
			f := ruleset.NewFake(ruleset.FakeOptions{})
			if err := f.Restore(context.Background(), input); err != nil {
				t.Fatalf("Fake refused the input: %v\n%s", err, input)
			}
			checkOnlyKubeChains(t, f)
			wantComments := map[string]bool{}
			for n := range snap.All() {
				str := n.String()
				for _, suffix := range []string{"", " cluster IP", " external IP", " loadbalancer IP", " has no endpoints",
					" -> 10.180.0.1:80", " -> 10.180.0.2:80"} {
					wantComments[CommentText(str, suffix)] = true
				}
				for _, pre := range []string{"masquerade traffic for ", "other traffic to "} {
					wantComments[CommentText(pre, str, " external destinations")] = true
				}
			}
			for _, table := range []string{"nat", "filter"} {
				for _, c := range f.Table(table).Chains {
					for i := range c.Rules {
						got := c.Rules[i].Comment()
						if !utf8.ValidString(got) || len(got) > MaxCommentLen || strings.ContainsAny(got, "\x00\n\r\t") {
							t.Errorf("%s %s: unsafe comment %q", table, c.Name, got)
						}
						if strings.Contains(got, "ns1/") && !wantComments[got] && !strings.HasPrefix(got, "other traffic to ") &&
							!strings.Contains(got, "traffic not accepted by") {
							t.Errorf("%s %s: comment %q is not one kproxy wrote", table, c.Name, got)
						}
					}
				}
			}
		})
	}
}

// checkOnlyKubeChains fails when a rule sits in a chain that is not kproxy's.
func checkOnlyKubeChains(t *testing.T, f *ruleset.Fake) {
	t.Helper()
	for _, table := range []string{"nat", "filter"} {
		for _, c := range f.Table(table).Chains {
			if len(c.Rules) > 0 && !strings.HasPrefix(c.Name, "KUBE-") {
				t.Errorf("%s: %d rule(s) in chain %s, outside KUBE-*", table, len(c.Rules), c.Name)
			}
		}
	}
}
