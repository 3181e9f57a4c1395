package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kproxy/kproxy/test/kerneltest"
	"github.com/kproxy/kproxy/test/probe"
)

// lockHold is how long the test holds the xtables lock: twice iptables'
// -w 5 wait, so at least one of kproxy's restores gives up.
const lockHold = 10 * time.Second

// TestFaultXtablesLockHeld holds the xtables lock for lockHold while new
// connections flow through a ClusterIP and a Service is added. Existing
// rules must keep serving (no failed connection), kproxy must neither hang
// nor exit, must log and count the failed restore, and must apply the new
// Service within syncPeriod (its retry interval) of the release.
//
// The lock is never the host's: /run/xtables.lock is shared with the root
// network namespace, so kproxy runs with XTABLES_LOCKFILE pointing at a
// file of this test, which holds it with flock(2) as iptables does.
// iptables-nft takes no lock at all, so kproxy runs with
// --iptables-backend legacy. The test's own reads use iptables-legacy-save,
// which takes no lock.
func TestFaultXtablesLockHeld(t *testing.T) {
	if os.Getenv("KPROXY_E2E_PROXY_MODE") == "ipvs" {
		kerneltest.RunsElsewhere(t, "in iptables mode (test/e2e on the host): it holds iptables' lock under iptables mode's restores")
	}
	t.Parallel()
	kerneltest.NeedTools(t, "xtables lock fault test", "env", "iptables-legacy", "iptables-legacy-save",
		"iptables-legacy-restore", "ip6tables-legacy", "ip6tables-legacy-save", "ip6tables-legacy-restore")
	lock := filepath.Join(t.TempDir(), "xtables.lock")
	e := newEnv(t, envOptions{KproxyArgs: []string{"--iptables-backend", "legacy"}})
	w := e.w
	save := func(table string) string { return e.run(w.Node, "iptables-legacy-save", "-t", table) }
	const vip, vipB = "10.96.0.90:80", "10.96.0.91:80"
	svc, svcB := service("locked", "10.96.0.90"), service("locked-b", "10.96.0.91")
	objs := []any{svc, slice(svc, "a", endpoint(w, w.Pods[1]), endpoint(w, w.Pods[2]))}
	e.apply(objs...)
	e.startKproxyWithEnv("XTABLES_LOCKFILE=" + lock)
	e.waitAnswer(w.Pods[0].Netns, vip)
	e.eventually(settleTimeout, "canaries and jumps in place", func() error { return tamperChecksHold(save) })
	e.requireLegacyAndPrivateLock(lock)
	conns := e.openLongLived(w.Pods[0].Netns, vip, 3)

	traffic := startTrafficLog(w.Pods[0].Netns, vip, faultPace)
	e.waitAttempts(traffic, 10)
	release := holdLock(t, lock)
	held := time.Now()
	e.apply(append(objs, svcB, slice(svcB, "b", endpoint(w, w.Pods[0])))...)
	e.eventually(lockHold, "a restore given up on the lock", func() error {
		if !strings.Contains(e.kproxy.Output(), "Another app is currently holding the xtables lock") {
			return fmt.Errorf("no failed restore logged yet")
		}
		return nil
	})
	if a, err := probe.TCP(w.Pods[0].Netns, vipB, probeTimeout); err == nil {
		t.Fatalf("the new Service answered (from %s) while the lock was held; the test proves nothing", a.Pod)
	}
	if code, _ := e.curl(w.Node, "http://127.0.0.1:10249/metrics"); code != 200 {
		t.Errorf("/metrics answered %d while the lock was held: kproxy hangs?", code)
	}
	time.Sleep(time.Until(held.Add(lockHold))) // the hold is a span of time, not a state to wait for
	released := release()
	applied := e.waitForTime(syncPeriod+10*time.Second, "the new Service answers after the release", func() error {
		_, err := probe.TCP(w.Pods[0].Netns, vipB, faultProbeTimeout)
		return err
	})
	s := summarize(since(traffic.finish(), held))
	kept, errs := pingCount(conns)
	logFault(t, fmt.Sprintf("xtables lock held %v", lockHold), s, fmt.Sprintf("kept %d of %d", kept, len(conns)),
		fmt.Sprintf("Service added under the lock answered %v after the release", applied.Sub(released).Round(time.Millisecond)),
		fmt.Sprintf("%v restore failures counted", e.restoreFailures()))

	if s.failed > 0 {
		t.Errorf("%d of %d new connections through the existing Service failed while the lock was held", s.failed, s.tried)
	}
	for _, err := range errs {
		t.Errorf("long-lived %s", err)
	}
	if d := applied.Sub(released); d > syncPeriod+3*time.Second {
		t.Errorf("the change made under the lock reached traffic %v after the release; want within syncPeriod (%v)", d, syncPeriod)
	}
	if n := e.restoreFailures(); n < 1 {
		t.Errorf("kubeproxy_sync_proxy_rules_iptables_restore_failures_total = %v, want at least 1", n)
	}
	if strings.Contains(e.kproxy.Output(), "Rules were removed by someone else") {
		t.Error("a listing that failed on the lock was taken for tampering")
	}
	e.requireRunning()
}

// startKproxyWithEnv starts kproxy in the node with extra environment variables.
func (e *env) startKproxyWithEnv(vars ...string) {
	e.t.Helper()
	p, err := e.w.Start(e.w.Node, append(append([]string{"env"}, vars...), e.kproxyArgs()...)...)
	if err != nil {
		e.t.Fatalf("start kproxy: %v", err)
	}
	e.kproxy = p
}

// requireLegacyAndPrivateLock checks the test's premises: kproxy wrote
// legacy tables (nft's hold none of its rules) and created the private
// lock file.
func (e *env) requireLegacyAndPrivateLock(lock string) {
	e.t.Helper()
	if nft := e.save("nat"); strings.Contains(nft, "KUBE-SERVICES") {
		e.t.Fatalf("kproxy wrote nf_tables rules despite --iptables-backend legacy:\n%s", nft)
	}
	if _, err := os.Stat(lock); err != nil {
		e.t.Fatalf("kproxy's iptables did not use XTABLES_LOCKFILE: %v", err)
	}
}

// holdLock takes lock with flock(2) as iptables-legacy does and returns a
// function that releases it and says when.
func holdLock(t *testing.T, path string) func() time.Time {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("flock %s: %v", path, err)
	}
	released := false
	release := func() time.Time {
		if !released {
			released = true
			syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			f.Close()
		}
		return time.Now()
	}
	t.Cleanup(func() { release() })
	return release
}

var restoreFailuresRE = regexp.MustCompile(`(?m)^kubeproxy_sync_proxy_rules_iptables_restore_failures_total\{ip_family="IPv4"\} (\S+)$`)

// restoreFailures reads the IPv4 restore failure counter from /metrics.
func (e *env) restoreFailures() float64 {
	e.t.Helper()
	_, body := e.curl(e.w.Node, "http://127.0.0.1:10249/metrics")
	m := restoreFailuresRE.FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}
