package e2e

import (
	"testing"
	"time"
)

func TestRewriteElapsedReadsTheSyncAfterTheTampering(t *testing.T) {
	log := `I1205 07:59:19.074077 968 runner.go:185] "Synced rules" logger="kproxy" mode="ipvs" ipFamily="IPv4" full=true services=1 elapsed="1.237414458s"
I1205 07:59:25.316665 968 run.go:185] "Rules were removed by someone else (firewall reload, iptables -F?); rewriting all rules" logger="kproxy"
I1205 07:59:25.500000 968 runner.go:185] "Synced rules" logger="kproxy" mode="ipvs" ipFamily="IPv6" full=false services=0 elapsed="1.087008ms"
I1205 07:59:27.945147 968 runner.go:185] "Synced rules" logger="kproxy" mode="ipvs" ipFamily="IPv4" full=true services=1 elapsed="2.609762648s"`
	if got, want := rewriteElapsed(log), 2609762648*time.Nanosecond; got != want {
		t.Errorf("rewriteElapsed = %v, want %v (the full sync after the tampering line)", got, want)
	}
	if got := rewriteElapsed(log[:200]); got != 0 {
		t.Errorf("no tampering logged: got %v, want 0", got)
	}
}
