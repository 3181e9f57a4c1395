package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/kube-proxy/config/v1alpha1"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/test/kerneltest"
)

// The kernel test of mode switching runs the real cleanups, at the
// function level, in a process started inside a throwaway network
// namespace: the test binary itself, re-run there with these variables
// (kproxy cannot be started in nftables mode before its backend exists,
// and the functions must not run in the test's own namespace).
const (
	envCleanupMode = "KPROXY_TEST_MODESWITCH_MODE"
	envCleanupAll  = "KPROXY_TEST_MODESWITCH_CLEANUP"
	// envNetns is the identity (nsInode) of the namespace the parent made;
	// the child refuses to run anywhere else.
	envNetns = "KPROXY_TEST_MODESWITCH_NETNS"
)

// iptablesLeftovers are rules of iptables mode and IPVS mode (as kube-proxy
// leaves them), kubelet's, and another program's.
const iptablesLeftovers = `*nat
:KUBE-SERVICES - [0:0]
:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]
:KUBE-SEP-AAAAAAAAAAAAAAAA - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-LOAD-BALANCER - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A POSTROUTING -s 10.98.0.0/16 -j MASQUERADE
-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-AAAAAAAAAAAAAAAA
-A KUBE-SVC-AAAAAAAAAAAAAAAA -j KUBE-SEP-AAAAAAAAAAAAAAAA
-A KUBE-SEP-AAAAAAAAAAAAAAAA -p tcp -m tcp -j DNAT --to-destination 10.244.1.5:8080
COMMIT
*filter
:KUBE-FORWARD - [0:0]
:KUBE-IPVS-FILTER - [0:0]
:KUBE-FIREWALL - [0:0]
:MY-CHAIN - [0:0]
-A INPUT -j KUBE-IPVS-FILTER
-A INPUT -j KUBE-FIREWALL
-A INPUT -j MY-CHAIN
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A MY-CHAIN -p tcp -m tcp --dport 9999 -j ACCEPT
COMMIT
`

// nftLeftovers are upstream nftables mode's two tables (a base chain, a
// service chain, a set, a verdict map) and another program's table.
const nftLeftovers = `
table ip kube-proxy {
	comment "rules for kube-proxy"
	set cluster-ips { type ipv4_addr; elements = { 172.30.0.41 } }
	map service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }
	chain service-ULMVA6XW-ns1/svc1/tcp/p80 { ip daddr 172.30.0.41 counter; }
	chain nat-prerouting { type nat hook prerouting priority dstnat; policy accept; ip daddr . meta l4proto . th dport vmap @service-ips; }
}
add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }
table ip6 kube-proxy {
	set cluster-ips { type ipv6_addr; }
	chain nat-output { type nat hook output priority -100; policy accept; }
}
table inet kpx-other {
	chain input { type filter hook input priority 0; policy accept; tcp dport 9999 accept; }
}
`

// modeSwitchWorld is one namespace seeded with every mode's leftovers.
type modeSwitchWorld struct {
	t  *testing.T
	ns string
}

func newModeSwitchWorld(t *testing.T) *modeSwitchWorld {
	kerneltest.NeedRoot(t, "mode-switch kernel test")
	kerneltest.NeedTools(t, "mode-switch kernel test", "ip", "iptables-restore", "iptables-save", "ip6tables-save", "nft", "ipset")
	w := &modeSwitchWorld{t: t, ns: kerneltest.Netns(t, "kpx-modesw-")}
	dir := t.TempDir()
	for name, data := range map[string]string{"rules": iptablesLeftovers, "nft": nftLeftovers,
		"rules6": "*nat\n:KUBE-SERVICES - [0:0]\n-A OUTPUT -j KUBE-SERVICES\nCOMMIT\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w.exec("iptables-restore", "--noflush", filepath.Join(dir, "rules"))
	w.exec("ip6tables-restore", "--noflush", filepath.Join(dir, "rules6"))
	w.exec("ipset", "create", "KUBE-CLUSTER-IP", "hash:ip,port")
	w.exec("nft", "-f", filepath.Join(dir, "nft"))
	return w
}

func (w *modeSwitchWorld) exec(args ...string) string {
	w.t.Helper()
	return kerneltest.NetnsExec(w.t, w.ns, args...)
}

// state is what the test looks at: KUBE-* chains of each table, ipsets, nft tables.
func (w *modeSwitchWorld) state() (chains map[string][]string, sets, tables []string) {
	chains = map[string][]string{}
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		for _, table := range []string{"nat", "filter"} {
			for _, line := range strings.Split(w.exec(tool, "-t", table), "\n") {
				if name, ok := strings.CutPrefix(line, ":KUBE-"); ok {
					key := tool[:len(tool)-5] + " " + table
					chains[key] = append(chains[key], "KUBE-"+strings.Fields(name)[0])
				}
			}
		}
	}
	sets = strings.Fields(w.exec("ipset", "list", "-n"))
	for _, line := range strings.Split(strings.TrimSpace(w.exec("nft", "list", "tables")), "\n") {
		tables = append(tables, strings.TrimPrefix(line, "table "))
	}
	for _, l := range chains {
		slices.Sort(l)
	}
	slices.Sort(sets)
	slices.Sort(tables)
	return chains, sets, tables
}

// runCleanupIn re-runs this test binary inside the namespace, where
// TestModeSwitchInNetns does the cleanup of mode (all modes with cleanupAll).
func (w *modeSwitchWorld) runCleanupIn(mode v1alpha1.ProxyMode, cleanupAll bool) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", w.ns, os.Args[0], "-test.run", "^TestModeSwitchInNetns$", "-test.v")
	cmd.Env = append(os.Environ(), envCleanupMode+"="+string(mode), envCleanupAll+"="+map[bool]string{true: "1"}[cleanupAll],
		envNetns+"="+nsInode(w.t, kerneltest.NetnsPath(w.t, w.ns)))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestModeSwitchInNetns") {
		w.t.Fatalf("cleanup of mode %s in %s: %v\n%s", mode, w.ns, err, out)
	}
	w.t.Logf("in the namespace:\n%s", out)
	// Libraries log too (moby/ipvs through logrus): where there is nothing
	// to clean, such as IPVS on a kernel without it, nothing may read as a failure.
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "level=error") || strings.Contains(line, "level=warning") {
			w.t.Errorf("the cleanup logged a warning or error: %s", strings.TrimSpace(line))
		}
	}
}

// TestModeSwitchKernel seeds a namespace with iptables mode's, IPVS mode's
// and nftables mode's leftovers plus other programs' rules, runs the
// start-up cleanup of each mode (and --cleanup's) there, and checks what
// went and what stayed.
func TestModeSwitchKernel(t *testing.T) {
	iptablesMode := map[string][]string{
		"iptables nat":    {"KUBE-KUBELET-CANARY", "KUBE-LOAD-BALANCER", "KUBE-POSTROUTING", "KUBE-SEP-AAAAAAAAAAAAAAAA", "KUBE-SERVICES", "KUBE-SVC-AAAAAAAAAAAAAAAA"},
		"iptables filter": {"KUBE-FIREWALL", "KUBE-FORWARD", "KUBE-IPVS-FILTER"},
		"ip6tables nat":   {"KUBE-SERVICES"},
	}
	cleaned := map[string][]string{"iptables nat": {"KUBE-KUBELET-CANARY"}, "iptables filter": {"KUBE-FIREWALL"}}
	nftMode := []string{"ip kube-proxy", "ip6 kube-proxy"}
	cases := []struct {
		mode       v1alpha1.ProxyMode
		cleanupAll bool
		chains     map[string][]string
		sets       []string
		// tablesGone are the nftables tables removed; every other one stays
		// (inet kpx-other, and iptables-nft's own ip nat, ip filter…).
		tablesGone []string
	}{
		// Starting in iptables or IPVS mode deletes nftables mode's tables only.
		{config.ModeIPTables, false, iptablesMode, []string{"KUBE-CLUSTER-IP"}, nftMode},
		{config.ModeIPVS, false, iptablesMode, []string{"KUBE-CLUSTER-IP"}, nftMode},
		// Starting in nftables mode removes iptables and IPVS modes' rules and sets, keeps its tables.
		{config.ModeNFTables, false, cleaned, nil, nil},
		// --cleanup removes all three, whatever the mode.
		{config.ModeIPTables, true, cleaned, nil, nftMode},
		{config.ModeNFTables, true, cleaned, nil, nftMode},
	}
	for _, tc := range cases {
		t.Run(string(tc.mode)+map[bool]string{true: "/cleanup"}[tc.cleanupAll], func(t *testing.T) {
			w := newModeSwitchWorld(t)
			chains, sets, before := w.state()
			if !equalChains(chains, iptablesMode) || len(sets) != 1 ||
				!containsAll(before, "inet kpx-other", "ip kube-proxy", "ip6 kube-proxy") {
				t.Fatalf("seeded state is not what the test expects: chains %v, sets %v, tables %v", chains, sets, before)
			}
			w.runCleanupIn(tc.mode, tc.cleanupAll)
			chains, sets, tables := w.state()
			if !equalChains(chains, tc.chains) {
				t.Errorf("KUBE-* chains after: %v, want %v", chains, tc.chains)
			}
			if !slices.Equal(sets, tc.sets) {
				t.Errorf("ipsets after: %v, want %v", sets, tc.sets)
			}
			want := slices.DeleteFunc(slices.Clone(before), func(tb string) bool { return slices.Contains(tc.tablesGone, tb) })
			if !slices.Equal(tables, want) {
				t.Errorf("nftables tables after: %v, want %v (before: %v)", tables, want, before)
			}
			if filter := w.exec("iptables-save", "-t", "filter"); !strings.Contains(filter, "-A INPUT -j MY-CHAIN") {
				t.Errorf("another program's rule was removed:\n%s", filter)
			}
			if nat := w.exec("iptables-save", "-t", "nat"); !strings.Contains(nat, "-A POSTROUTING -s 10.98.0.0/16 -j MASQUERADE") {
				t.Errorf("another program's nat rule was removed:\n%s", nat)
			}
		})
	}
}

func containsAll(list []string, items ...string) bool {
	for _, it := range items {
		if !slices.Contains(list, it) {
			return false
		}
	}
	return true
}

func equalChains(a, b map[string][]string) bool {
	for k := range a {
		if !slices.Equal(a[k], b[k]) {
			return false
		}
	}
	for k := range b {
		if !slices.Equal(a[k], b[k]) {
			return false
		}
	}
	return true
}

// TestModeSwitchInNetns is the half of TestModeSwitchKernel that runs
// inside its namespace: the start-up cleanup of the mode in the
// environment (the function runProxy calls before the first sync), or with
// KPROXY_TEST_MODESWITCH_CLEANUP=1 what --cleanup runs. Any logged failure fails it.
func TestModeSwitchInNetns(t *testing.T) {
	mode := v1alpha1.ProxyMode(os.Getenv(envCleanupMode))
	if mode == "" {
		kerneltest.RunsElsewhere(t, "inside a network namespace of its own, started by TestModeSwitchKernel")
	}
	if self, want := nsInode(t, "/proc/self/ns/net"), os.Getenv(envNetns); self != want {
		t.Fatalf("refusing to clean up rules: this network namespace is %s, not the test's (%q)", self, want)
	}
	var logs logLines
	ctx := context.Background()
	cfg := &config.Config{Mode: mode, CommandTimeout: 30 * time.Second}
	cleaners := newModeCleaners(ctx, cfg, logs.logger())
	if os.Getenv(envCleanupAll) == "1" {
		if err := removeLeftovers(ctx, leftoverModes(mode, true), cleaners); err != nil {
			t.Errorf("--cleanup's removal: %v", err)
		}
	} else {
		removeOtherModesLeftovers(ctx, mode, cleaners, logs.logger())
		if logs.find("Could not remove") {
			t.Error("the start-up cleanup failed")
		}
	}
	if logs.find(`"error"=`) {
		t.Error("the cleanup logged an error")
	}
	t.Logf("log:\n%s", strings.Join(logs.lines, "\n"))
}

// nsInode identifies the network namespace of an nsfs file (a
// /proc/PID/ns/net link or an ip-netns bind mount) by device and inode.
func nsInode(t *testing.T, path string) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}
