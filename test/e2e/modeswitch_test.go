package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kproxy/kproxy/test/kerneltest"
	"github.com/kproxy/kproxy/test/probe"
)

// nftablesModeTables are the tables upstream kube-proxy's nftables mode
// leaves (a base chain, a service chain, a set and a verdict map in each
// family), and another program's table, which must survive every cleanup.
const nftablesModeTables = `
table ip kube-proxy {
	comment "rules for kube-proxy"
	set cluster-ips { type ipv4_addr; elements = { 10.96.0.99 } }
	map service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }
	chain service-ULMVA6XW-ns1/svc1/tcp/p80 { ip daddr 10.96.0.99 counter; }
	chain nat-prerouting { type nat hook prerouting priority dstnat; policy accept; ip daddr . meta l4proto . th dport vmap @service-ips; }
}
add element ip kube-proxy service-ips { 10.96.0.99 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }
table ip6 kube-proxy {
	comment "rules for kube-proxy"
	set cluster-ips { type ipv6_addr; elements = { fd00:96::99 } }
	chain nat-output { type nat hook output priority -100; policy accept; }
}
table inet kpx-other {
	chain input { type filter hook input priority 0; policy accept; tcp dport 9999 accept; }
}
`

// addNFTablesModeTables loads nftablesModeTables into the node's namespace.
func (e *env) addNFTablesModeTables() {
	e.t.Helper()
	kerneltest.NeedTools(e.t, "nftables cleanup test", "nft")
	file := filepath.Join(e.t.TempDir(), "tables.nft")
	if err := os.WriteFile(file, []byte(nftablesModeTables), 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.run(e.w.Node, "nft", "-f", file)
	if got := e.nftTables(); !slices.Contains(got, "ip kube-proxy") || !slices.Contains(got, "ip6 kube-proxy") {
		e.t.Fatalf("seeding failed: tables %v", got)
	}
}

// nftTables lists the node's nftables tables as "family name".
func (e *env) nftTables() []string {
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(e.run(e.w.Node, "nft", "list", "tables")), "\n") {
		if name, ok := strings.CutPrefix(line, "table "); ok {
			out = append(out, name)
		}
	}
	return out
}

// checkNFTablesModeGone fails unless nftables mode's tables are gone and
// the other program's table is intact.
func (e *env) checkNFTablesModeGone(when string) {
	e.t.Helper()
	tables := e.nftTables()
	for _, gone := range []string{"ip kube-proxy", "ip6 kube-proxy"} {
		if slices.Contains(tables, gone) {
			e.t.Errorf("table %s survived %s: tables %v", gone, when, tables)
		}
	}
	if other := e.run(e.w.Node, "nft", "list", "table", "inet", "kpx-other"); !strings.Contains(other, "tcp dport 9999 accept") {
		e.t.Errorf("%s changed another program's table:\n%s", when, other)
	}
}

// runKproxyToEnd runs kproxy in the node namespace with args and waits
// (bounded) for it to exit 0; it returns its output.
func (e *env) runKproxyToEnd(args ...string) string {
	e.t.Helper()
	p, err := e.w.Start(e.w.Node, args...)
	if err != nil {
		e.t.Fatalf("start kproxy: %v", err)
	}
	select {
	case <-p.Done():
	case <-time.After(time.Minute):
		_ = p.Stop(time.Second)
		e.t.Fatalf("kproxy %s did not exit within a minute:\n%s", strings.Join(args[1:], " "), tail(p.Output(), 40))
	}
	if err := p.Err(); err != nil {
		e.t.Fatalf("kproxy %s: %v\n%s", strings.Join(args[1:], " "), err, tail(p.Output(), 40))
	}
	return p.Output()
}

// TestStartRemovesNFTablesModeTables: a node that ran upstream kube-proxy
// in nftables mode switches to kproxy in iptables mode (IPVS mode alike):
// before its first sync kproxy deletes table ip/ip6 kube-proxy, as
// upstream does, and keeps every other table.
func TestStartRemovesNFTablesModeTables(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{Mode: "iptables"})
	w := e.w
	e.addNFTablesModeTables()
	svc := service("web", "10.96.0.10")
	e.apply(svc, slice(svc, "a", endpoint(w, w.Pods[0])))

	out := e.runKproxyToEnd(append(e.kproxyArgs(), "--once")...)
	e.checkNFTablesModeGone("kproxy's start")
	if !strings.Contains(out, "Removed kube-proxy nftables tables") {
		t.Errorf("kproxy did not log the removal:\n%s", tail(out, 40))
	}
	if nat := e.save("nat"); !strings.Contains(nat, "e2e/web:p cluster IP") {
		t.Errorf("kproxy did not sync after the cleanup:\n%s", nat)
	}
}

// TestCleanupFlagRemovesEveryMode: kproxy --cleanup after iptables mode ran
// and with upstream's nftables-mode tables and IPVS-mode ipsets present
// removes all of it (iptables chains and jumps, ipsets, both nftables
// tables) and nothing of other programs or kubelet.
func TestCleanupFlagRemovesEveryMode(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{Mode: "iptables"})
	w := e.w
	kerneltest.NeedTools(t, "cleanup test", "ipset")
	svc := service("web", "10.96.0.10", withNodePort(30080))
	e.start(svc, slice(svc, "a", endpoint(w, w.Pods[0])))
	e.waitSynced()
	e.waitForRule("nat", "KUBE-SVC-")
	if err := e.kproxy.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	// Seeded after kproxy stopped: a running iptables-mode kproxy removes them itself.
	e.addNFTablesModeTables()
	e.run(w.Node, "ipset", "create", "KUBE-CLUSTER-IP", "hash:ip,port")
	e.run(w.Node, "ipset", "create", "KUBE-LOOP-BACK", "hash:ip,port,ip")
	e.run(w.Node, "ipset", "create", "MY-SET", "hash:ip")
	e.restore([]byte(staleAndForeignRules))
	e.restore([]byte(kubeletRules))

	e.runKproxyToEnd(kproxyBin, "--cleanup")
	e.checkNFTablesModeGone("--cleanup")
	if sets := strings.Fields(e.run(w.Node, "ipset", "list", "-n")); !slices.Equal(sets, []string{"MY-SET"}) {
		t.Errorf("ipsets after --cleanup: %v, want only another program's MY-SET", sets)
	}
	e.checkOnlyKubeletChainsLeft()
	if filter := e.save("filter"); !strings.Contains(filter, "-A INPUT -j MY-CHAIN") {
		t.Errorf("--cleanup removed another program's rules:\n%s", filter)
	}
}

// TestModeSwitchIPTablesToNFTablesUnderTraffic restarts kproxy from
// iptables mode into nftables mode under traffic: the iptables rules carry
// connections until the nftables ones are in place and only then go, so no
// new connection fails and long-lived ones keep their pod.
func TestModeSwitchIPTablesToNFTablesUnderTraffic(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{Mode: "iptables"})
	w := e.w
	_, vip, conns, traffic := e.startWebUnderTraffic()

	e.killKproxy()
	e.mode = "nftables"
	e.startKproxy()
	e.waitForProgrammed("nat", "", "10.96.0.10 . tcp . 80")
	e.eventually(settleTimeout, "iptables mode's rules removed", func() error {
		if nat := e.save("nat"); strings.Contains(nat, "KUBE-SVC-") {
			return fmt.Errorf("iptables nat still has service chains")
		}
		return nil
	})

	traffic.finish(t)
	pingAll(t, conns)
	if _, err := probe.TCP(w.Pods[1].Netns, vip, probeTimeout); err != nil {
		t.Errorf("after the switch: %v", err)
	}
}
