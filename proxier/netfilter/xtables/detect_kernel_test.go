package xtables_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kproxy/kproxy/proxier/netfilter/xtables"
	"github.com/kproxy/kproxy/test/kerneltest"
)

// privateXtablesLock points iptables-legacy's lock at a file of the test's
// own: the default, /run/xtables.lock, is shared with the host, which a
// test must never hold.
func privateXtablesLock(t *testing.T) {
	t.Helper()
	t.Setenv("XTABLES_LOCKFILE", filepath.Join(t.TempDir(), "xtables.lock"))
}

func inNetns(t *testing.T, ns string, argv ...string) {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
	}
}

// TestKernelDetectBackend runs the detection in namespaces laid out as a
// kubelet of either backend leaves a node, and in one with other rules only.
func TestKernelDetectBackend(t *testing.T) {
	kerneltest.NeedTools(t, "iptables backend detection kernel test", "iptables-legacy", "iptables-nft")
	privateXtablesLock(t)
	tests := []struct {
		name  string
		setup [][]string
		want  xtables.Backend
		hint  string
	}{
		{name: "kubelet on legacy", want: xtables.BackendLegacy, hint: "KUBE-KUBELET-CANARY",
			setup: [][]string{{"iptables-legacy", "-t", "mangle", "-N", "KUBE-KUBELET-CANARY"},
				{"iptables-nft", "-A", "INPUT", "-j", "ACCEPT"}, {"iptables-nft", "-A", "INPUT", "-j", "ACCEPT"}}},
		{name: "kubelet on nft", want: xtables.BackendNFT, hint: "KUBE-IPTABLES-HINT",
			setup: [][]string{{"iptables-nft", "-t", "mangle", "-N", "KUBE-IPTABLES-HINT"},
				{"iptables-legacy", "-A", "INPUT", "-j", "ACCEPT"}}},
		{name: "more legacy rules, no kubelet", want: xtables.BackendLegacy,
			setup: [][]string{{"iptables-legacy", "-A", "INPUT", "-j", "ACCEPT"}, {"ip6tables-legacy", "-A", "INPUT", "-j", "ACCEPT"},
				{"iptables-nft", "-A", "INPUT", "-j", "ACCEPT"}}},
		{name: "empty namespace", want: xtables.BackendNFT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNetns(t)
			for _, argv := range tt.setup {
				inNetns(t, ns, argv...)
			}
			got, err := xtables.DetectBackend(context.Background(), xtables.DetectOptions{
				CommandPrefix: []string{"ip", "netns", "exec", ns}, Timeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			if got.Backend != tt.want || got.Hint != tt.hint {
				t.Errorf("DetectBackend = %+v, want %q (hint %q)", got, tt.want, tt.hint)
			}
			t.Logf("detected %+v", got)
		})
	}
}
