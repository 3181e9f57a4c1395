package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kproxy/kproxy/test/kerneltest"
)

// failingNATWrapper writes an iptables-nft-restore that, once per creation
// of the file "fail-nat" next to it, adds a rule jumping to a missing chain
// to the input's first nat block, so the kernel refuses nat after the
// blocks before it (filter, mangle) committed.
func failingNATWrapper(t *testing.T) (dir, trigger string) {
	t.Helper()
	kerneltest.NeedTools(t, "failed nat block test", "iptables-nft-restore")
	real, err := exec.LookPath("iptables-nft-restore")
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	trigger = filepath.Join(dir, "fail-nat")
	script := fmt.Sprintf(`#!/bin/sh
if rm %q 2>/dev/null; then
	awk '/^\*nat$/ { nat = 1 } nat && /^COMMIT$/ && !done { print "-A KPX-NO-SUCH-CHAIN -j ACCEPT"; done = 1 } { print }' | %q "$@"
	exit $?
fi
exec %q "$@"
`, trigger, real, real)
	if err := os.WriteFile(filepath.Join(dir, "iptables-nft-restore"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, trigger
}

var saveCounters = regexp.MustCompile(`\[\d+:\d+\]`)

// saveAllTables is iptables-nft-save of every table in the node namespace
// without its dated comment lines and with chain counters zeroed.
func (e *env) saveAllTables() string {
	var out []string
	for _, line := range strings.Split(e.run(e.w.Node, "iptables-nft-save"), "\n") {
		if !strings.HasPrefix(line, "#") {
			out = append(out, saveCounters.ReplaceAllString(line, "[0:0]"))
		}
	}
	return strings.Join(out, "\n")
}

// TestFailedNATBlockLeavesEveryTableAsItWas runs kproxy with an
// iptables-nft-restore whose nat block fails once, on a sync that changes
// filter too (a Service loses its endpoints: a REJECT rule in filter, its
// chains gone from nat). Every table must read back byte for byte as before
// the sync, and the next sync (a retry after syncPeriod) must apply it.
func TestFailedNATBlockLeavesEveryTableAsItWas(t *testing.T) {
	t.Parallel()
	dir, trigger := failingNATWrapper(t)
	e := newEnv(t, envOptions{KproxyArgs: []string{"--iptables-backend", "nft"}})
	w := e.w
	web, api := service("web", "10.96.0.85"), service("api", "10.96.0.86")
	webSlice := slice(web, "a", endpoint(w, w.Pods[1]), endpoint(w, w.Pods[2]))
	e.apply(web, webSlice, api, slice(api, "a", endpoint(w, w.Pods[0])))
	p, err := w.Start(w.Node, append([]string{"env", "PATH=" + dir + ":" + os.Getenv("PATH")}, e.kproxyArgs()...)...)
	if err != nil {
		t.Fatalf("start kproxy: %v", err)
	}
	e.kproxy = p
	e.waitAnswer(w.Pods[0].Netns, "10.96.0.86:80")
	e.waitSynced()
	tr := startPacedTraffic(w.Pods[0].Netns, "10.96.0.85:80", 20*time.Millisecond)
	before := e.saveAllTables()

	if err := os.WriteFile(trigger, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e.apply(web, webSlice, api, slice(api, "a"))
	e.eventually(settleTimeout, "the sync fails and is rolled back", func() error {
		if !strings.Contains(e.kproxy.Output(), "rolled back") {
			return fmt.Errorf("no rollback logged yet")
		}
		return nil
	})
	after := e.saveAllTables()
	if after != before {
		t.Errorf("tables after the failed sync differ from before it:\n%s\nbefore:\n%s", after, before)
	}
	t.Logf("kproxy: %s", logLine(e.kproxy.Output(), "rolled back"))

	e.waitForRule("filter", `"e2e/api:p has no endpoints"`)
	e.waitNoRule("nat", "e2e/api:p cluster IP")
	tried := tr.made()
	tr.finish(t)
	t.Logf("%d new connections to the unchanged service during the test", tried)
	if strings.Contains(before, "has no endpoints") || !strings.Contains(before, "e2e/api:p cluster IP") {
		t.Errorf("the state before the failed sync is not the one it changes; the test proves nothing:\n%s", before)
	}
}
