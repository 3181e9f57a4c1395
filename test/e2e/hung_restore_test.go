package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kproxy/kproxy/test/kerneltest"
	"github.com/kproxy/kproxy/test/probe"
)

// hungCommandTimeout is the --command-timeout of the hung-restore test (its
// restores of a few kB get a few milliseconds more).
const hungCommandTimeout = 2 * time.Second

// hangingWrapper writes, in a directory of its own, an iptables-nft-restore
// that blocks (in a child, holding the output pipe) while the file "hang"
// next to it exists, and otherwise runs the real one. It returns the
// directory to put first in kproxy's PATH and the trigger file.
func hangingWrapper(t *testing.T) (dir, trigger string) {
	t.Helper()
	kerneltest.NeedTools(t, "hung iptables-restore test", "iptables-nft-restore")
	real, err := exec.LookPath("iptables-nft-restore")
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	trigger = filepath.Join(dir, "hang")
	script := fmt.Sprintf("#!/bin/sh\nif [ -e %q ]; then\n\tsleep 3600\n\texit 1\nfi\nexec %q \"$@\"\n", trigger, real)
	if err := os.WriteFile(filepath.Join(dir, "iptables-nft-restore"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, trigger
}

// TestHungRestoreFailsTheSyncAndRecovers puts a wrapper first in kproxy's
// PATH whose iptables-nft-restore hangs while a trigger file exists. With
// the trigger set and a Service change, each sync must time out (not hang),
// count as a restore failure and be retried; /healthz must turn 503 once the
// change has waited 2 × syncPeriod, as upstream's; the rules already in
// place keep serving. Once the trigger is gone the change is applied and
// /healthz is 200 again.
func TestHungRestoreFailsTheSyncAndRecovers(t *testing.T) {
	t.Parallel()
	dir, trigger := hangingWrapper(t)
	e := newEnv(t, envOptions{KproxyArgs: []string{"--iptables-backend", "nft", "--command-timeout", hungCommandTimeout.String()}})
	w := e.w
	web := service("web", "10.96.0.80")
	objs := []any{web, slice(web, "a", endpoint(w, w.Pods[1]), endpoint(w, w.Pods[2]))}
	e.apply(objs...)
	p, err := w.Start(w.Node, append([]string{"env", "PATH=" + dir + ":" + os.Getenv("PATH")}, e.kproxyArgs()...)...)
	if err != nil {
		t.Fatalf("start kproxy: %v", err)
	}
	e.kproxy = p
	e.waitAnswer(w.Pods[0].Netns, "10.96.0.80:80")
	e.waitSynced()
	e.eventually(settleTimeout, "/healthz 200", func() error { return e.proxyHealth(200) })
	tr := startPacedTraffic(w.Pods[0].Netns, "10.96.0.80:80", 20*time.Millisecond)

	if err := os.WriteFile(trigger, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	failuresBefore := e.restoreFailures()
	late := service("late", "10.96.0.81")
	e.apply(append(objs, late, slice(late, "a", endpoint(w, w.Pods[0])))...)
	changed := time.Now()

	e.eventually(settleTimeout, "a restore timed out", func() error {
		if !strings.Contains(e.kproxy.Output(), "timed out after") {
			return fmt.Errorf("no timeout logged yet")
		}
		return nil
	})
	e.eventually(4*syncPeriod, "/healthz 503", func() error { return e.proxyHealth(503) })
	unhealthyAfter := time.Since(changed)
	if unhealthyAfter < 2*syncPeriod-time.Second {
		t.Errorf("/healthz turned 503 %v after the change, before 2 × syncPeriod", unhealthyAfter)
	}
	e.eventually(settleTimeout, "the failed sync is retried", func() error {
		if n := e.restoreFailures() - failuresBefore; n < 2 {
			return fmt.Errorf("%v restore failures counted since the trigger, want at least 2", n)
		}
		return nil
	})
	if _, err := probe.TCP(w.Pods[0].Netns, "10.96.0.81:80", probeTimeout); err == nil {
		t.Error("the new service answers although every restore hangs; the test proves nothing")
	}

	if err := os.Remove(trigger); err != nil {
		t.Fatal(err)
	}
	recovering := time.Now()
	e.waitAnswer(w.Pods[0].Netns, "10.96.0.81:80")
	e.eventually(settleTimeout, "/healthz 200 again", func() error { return e.proxyHealth(200) })
	tried := tr.made()
	tr.finish(t)
	t.Logf("traffic to the unchanged service: %d new connections tried from before the trigger until recovery, over %v after the change",
		tried, time.Since(changed).Round(100*time.Millisecond))
	t.Logf("/healthz 503 %v after the change; %v restore failures; rules converged %v after the trigger was removed",
		unhealthyAfter.Round(100*time.Millisecond), e.restoreFailures()-failuresBefore, time.Since(recovering).Round(100*time.Millisecond))
	for _, line := range strings.Split(e.kproxy.Output(), "\n") {
		if strings.Contains(line, "Sync failed") && strings.Contains(line, "timed out") {
			t.Logf("kproxy: %s", line)
			break
		}
	}
	if n := e.countProcesses("sleep 3600"); n > 0 {
		t.Errorf("%d hung wrapper children outlived their timeout", n)
	}
}

// proxyHealth checks that /healthz answers with code (200 or 503) and a
// body whose "healthy" agrees, for a node that is eligible.
func (e *env) proxyHealth(code int) error {
	got, body := e.curl(e.w.Node, "http://127.0.0.1:10256/healthz")
	var st struct {
		Healthy      bool  `json:"healthy"`
		NodeEligible *bool `json:"nodeEligible"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(body)), &st); err != nil {
		return fmt.Errorf("body %q: %w", body, err)
	}
	if got != code || st.Healthy != (code == 200) || st.NodeEligible == nil || !*st.NodeEligible {
		return fmt.Errorf("/healthz = %d %s, want %d from an eligible node", got, strings.TrimSpace(body), code)
	}
	return nil
}

// countProcesses counts processes of the node namespace whose command line
// contains substr.
func (e *env) countProcesses(substr string) int {
	e.t.Helper()
	out, err := exec.Command("ip", "netns", "pids", e.w.Node).Output()
	if err != nil {
		e.t.Fatalf("ip netns pids: %v", err)
	}
	n := 0
	for _, pid := range strings.Fields(string(out)) {
		cmdline, err := os.ReadFile("/proc/" + pid + "/cmdline")
		if err == nil && strings.Contains(strings.ReplaceAll(string(cmdline), "\x00", " "), substr) {
			n++
		}
	}
	return n
}
