package netns_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kproxy/kproxy/test/kerneltest"
	"github.com/kproxy/kproxy/test/netns"
)

// namespacesWithPrefix lists "ip netns list" entries starting with prefix.
func namespacesWithPrefix(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if fields := strings.Fields(line); len(fields) > 0 && strings.HasPrefix(fields[0], prefix) {
			names = append(names, fields[0])
		}
	}
	return names
}

func pidsIn(t *testing.T, ns string) []int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "pids", ns).CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns pids %s: %v: %s", ns, err, out)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// running reports whether pid exists and is not a zombie awaiting reaping
// by a parent outside our control.
func running(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// Fields after the parenthesised command name: "S ..." where S is the state.
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
	return !strings.HasPrefix(strings.TrimSpace(rest), "Z")
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for running(pid) {
		if time.Now().After(deadline) {
			t.Errorf("pid %d still running after Close", pid)
			return
		}
		<-tick.C
	}
}

func TestCloseRemovesNamespacesAndProcesses(t *testing.T) {
	if reason := netns.SkipReason(); reason != "" {
		kerneltest.SkipOrFail(t, reason)
	}
	w, err := netns.NewWorld(netns.Options{Pods: 1, RemotePods: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() }) // safety net if an assertion stops the test early
	if _, err := w.StartPodservers(podserverBin, defaultPorts); err != nil {
		t.Fatal(err)
	}
	// A process that leaves its process group is still found by namespace.
	escaper, err := w.Start(w.Client, "setsid", "-f", "sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	<-escaper.Done()
	var pids []int
	for _, ns := range w.Namespaces() {
		pids = append(pids, pidsIn(t, ns)...)
	}
	if len(pids) < 3 { // two pod servers and the escaped sleep
		t.Fatalf("pids in world = %v, want at least 3", pids)
	}

	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if left := namespacesWithPrefix(t, w.Prefix+"-"); len(left) > 0 {
		t.Errorf("namespaces left after Close: %v", left)
	}
	for _, pid := range pids {
		waitGone(t, pid)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if _, err := w.Start(w.Node, "true"); err == nil {
		t.Error("Start after Close succeeded")
	}
}

func TestFailedSetupRemovesOnlyWhatItCreated(t *testing.T) {
	if reason := netns.SkipReason(); reason != "" {
		kerneltest.SkipOrFail(t, reason)
	}
	b := make([]byte, 3)
	rand.Read(b)
	prefix := "kpx-" + hex.EncodeToString(b)
	// Someone else's namespace in the way of the world's third namespace.
	blocker := prefix + "-client"
	if out, err := exec.Command("ip", "netns", "add", blocker).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", blocker).Run() })

	_, err := netns.NewWorld(netns.Options{Prefix: prefix, Pods: 1, RemotePods: 1})
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("NewWorld err = %v, want an 'already exists' failure", err)
	}
	left := namespacesWithPrefix(t, prefix+"-")
	if len(left) != 1 || left[0] != blocker {
		t.Errorf("namespaces after failed setup = %v, want only the pre-existing %s", left, blocker)
	}
}
