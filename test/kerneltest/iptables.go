package kerneltest

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

var countersRE = regexp.MustCompile(`\[\d+:\d+\]`)

// IPTablesSave runs save (iptables-save, iptables-nft-save, ...) in the
// network namespace ns and returns every table without the dated comment
// lines and with chain counters zeroed, so that two saves compare byte for
// byte.
func IPTablesSave(t testing.TB, ns, save string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, save).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", save, err, out)
	}
	var b strings.Builder
	for line := range strings.Lines(string(out)) {
		if !strings.HasPrefix(line, "#") {
			b.WriteString(countersRE.ReplaceAllString(line, "[0:0]"))
		}
	}
	return b.String()
}
