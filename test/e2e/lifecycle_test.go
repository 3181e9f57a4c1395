package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
	"github.com/kproxy/kproxy/test/probe"
)

// syncTimeout bounds the wait for kproxy's first sync after a (re)start.
const syncTimeout = 30 * time.Second

// TestRestartUnderTraffic kills kproxy with SIGKILL while new connections
// are being made and long-lived ones are open, starts it again, and checks
// that no new connection failed, established ones still echo, the new
// process applies changes, and the restart did not duplicate jump rules.
func TestRestartUnderTraffic(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		e := newEnv(t, envOptions{Mode: mode})
		w := e.w
		svc, vip, conns, traffic := e.startWebUnderTraffic()

		e.killKproxy()
		e.startKproxy()
		e.waitSynced()
		e.apply(svc, slice(svc, "a", endpoint(w, w.Pods[0]), endpoint(w, w.Pods[1])))
		e.waitNoRule("nat", w.Pods[2].IPv4.String()+":8080")

		traffic.finish(t)
		pingAll(t, conns)
		counts, err := probe.TCPMany(w.Pods[1].Netns, vip, 60, probeTimeout)
		if err != nil {
			t.Fatalf("after the restart and the endpoint change: %v", err)
		}
		if counts[w.Pods[2].Name] > 0 || counts[w.Pods[0].Name] == 0 || counts[w.Pods[1].Name] == 0 {
			t.Errorf("after removing pod-3 the restarted kproxy must spread over pod-1 and pod-2 only, got %v", counts)
		}
		if mode != "nftables" { // nftables mode has its own table and no jumps from built-in chains
			e.assertSingleJumps()
		}
	})
}

// TestAdoptsUpstreamRules starts kproxy on a node that already holds the
// rules upstream kube-proxy wrote for the same objects, plus a stale service
// chain pair and another program's chain: traffic never fails, the stale
// chains go away with the first sync, and the foreign rules stay.
func TestAdoptsUpstreamRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	w := e.w
	const vip = "10.96.0.10:80"
	svc := service("web", "10.96.0.10")
	e.apply(svc, slice(svc, "a", endpoint(w, w.Pods[0]), endpoint(w, w.Pods[1]), endpoint(w, w.Pods[2])))
	e.restore(e.dryRun(v1.IPv4Protocol))
	e.restore([]byte(staleAndForeignRules))
	e.waitAnswer(w.Pods[0].Netns, vip)
	if _, err := probe.TCP(w.Pods[0].Netns, "10.96.0.99:80", probeTimeout); err != nil {
		t.Fatalf("the stale service's rules must work before kproxy starts (else the test proves nothing): %v", err)
	}

	traffic := startTraffic(w.Pods[0].Netns, vip)
	e.startKproxy()
	e.waitSynced()
	traffic.finish(t)

	nat, filter := e.save("nat"), e.save("filter")
	for _, stale := range []string{staleSVC, staleSEP, "10.96.0.99"} {
		if strings.Contains(nat, stale) {
			t.Errorf("stale %s survived kproxy's first sync:\n%s", stale, nat)
		}
	}
	for _, foreign := range []string{"-A MY-CHAIN -p tcp -m tcp --dport 9999 -j ACCEPT", "-A INPUT -j MY-CHAIN"} {
		if !strings.Contains(filter, foreign) {
			t.Errorf("foreign rule %q was removed:\n%s", foreign, filter)
		}
	}
	if !strings.Contains(nat, "-A POSTROUTING -s 10.98.0.0/16 -j MASQUERADE") {
		t.Errorf("foreign nat rule was removed:\n%s", nat)
	}
	e.assertSingleJumps()
	if _, err := probe.TCPMany(w.Pods[1].Netns, vip, 20, probeTimeout); err != nil {
		t.Errorf("after adoption: %v", err)
	}
}

const (
	staleSVC = "KUBE-SVC-STALESTALESTALE1"
	staleSEP = "KUBE-SEP-STALESTALESTALE1"
)

// staleAndForeignRules is a service upstream once wrote (its chains, its
// KUBE-SERVICES rule) that is no longer in the manifests, and rules of
// another program in filter and nat.
var staleAndForeignRules = `*nat
:` + staleSVC + ` - [0:0]
:` + staleSEP + ` - [0:0]
-I KUBE-SERVICES 1 -d 10.96.0.99/32 -p tcp -m comment --comment "e2e/gone:p cluster IP" -m tcp --dport 80 -j ` + staleSVC + `
-A ` + staleSVC + ` -m comment --comment "e2e/gone:p -> 10.244.1.13:8080" -j ` + staleSEP + `
-A ` + staleSEP + ` -s 10.244.1.13/32 -m comment --comment "e2e/gone:p" -j KUBE-MARK-MASQ
-A ` + staleSEP + ` -p tcp -m comment --comment "e2e/gone:p" -m tcp -j DNAT --to-destination 10.244.1.13:8080
-A POSTROUTING -s 10.98.0.0/16 -j MASQUERADE
COMMIT
*filter
:MY-CHAIN - [0:0]
-A MY-CHAIN -p tcp -m tcp --dport 9999 -j ACCEPT
-A INPUT -j MY-CHAIN
COMMIT
`

// TestCleanupFlag checks kproxy --cleanup after a normal run: every chain
// and jump of kube-proxy goes, another program's rules stay, exit code 0.
func TestCleanupFlag(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	w := e.w
	svc := service("web", "10.96.0.10", withNodePort(30080))
	svc6 := service("web6", "fd00:96::10", withIPv6("fd00:96::10"))
	e.start(svc, slice(svc, "a", endpoint(w, w.Pods[0])), svc6, slice(svc6, "a", endpoint(w, w.Pods[0], v6(w.Pods[0]))))
	e.waitSynced()
	e.waitForRule("nat", "KUBE-SVC-")
	if err := e.kproxy.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	e.restore([]byte(staleAndForeignRules))
	e.restore([]byte(kubeletRules))

	if out, err := w.Exec(w.Node, kproxyBin, "--cleanup"); err != nil {
		t.Fatalf("kproxy --cleanup must exit 0: %v\n%s", err, out)
	}
	e.checkOnlyKubeletChainsLeft()
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		for _, table := range []string{"nat", "filter"} {
			saved := e.run(w.Node, tool, "-t", table)
			if left := kubeProxyLeftovers(saved); len(left) > 0 {
				t.Errorf("%s -t %s after --cleanup still has:\n%s", tool, table, strings.Join(left, "\n"))
			}
		}
	}
	if filter := e.save("filter"); !strings.Contains(filter, "-A INPUT -j MY-CHAIN") ||
		!strings.Contains(filter, "-A MY-CHAIN -p tcp -m tcp --dport 9999 -j ACCEPT") {
		t.Errorf("--cleanup removed another program's rules:\n%s", filter)
	}
	if nat := e.save("nat"); !strings.Contains(nat, "-A POSTROUTING -s 10.98.0.0/16 -j MASQUERADE") {
		t.Errorf("--cleanup removed another program's nat rule:\n%s", nat)
	}
}

// kubeletRules are the chains kubelet keeps (its canaries and the iptables
// mode hint) plus the KUBE-FIREWALL localnet guard it shares with kube-proxy.
var kubeletRules = `*mangle
:KUBE-IPTABLES-HINT - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
COMMIT
*nat
:KUBE-KUBELET-CANARY - [0:0]
COMMIT
*filter
:KUBE-KUBELET-CANARY - [0:0]
COMMIT
`

// checkOnlyKubeletChainsLeft checks that after --cleanup the KUBE-* chains
// are exactly what the README's cleanup section promises to keep.
func (e *env) checkOnlyKubeletChainsLeft() {
	e.t.Helper()
	kept := map[string][]string{
		"mangle": {"KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY"},
		"nat":    {"KUBE-KUBELET-CANARY"},
		"filter": {"KUBE-FIREWALL", "KUBE-KUBELET-CANARY"},
	}
	for table, want := range kept {
		if got := kubeChains(e.save(table)); !slices.Equal(got, want) {
			e.t.Errorf("KUBE-* chains left in %s after --cleanup: %v, want exactly %v", table, got, want)
		}
	}
}

// kubeChains returns the sorted names of the KUBE-* chains in iptables-save output.
func kubeChains(saved string) []string {
	var out []string
	for _, line := range strings.Split(saved, "\n") {
		if name, ok := strings.CutPrefix(line, ":KUBE-"); ok {
			out = append(out, "KUBE-"+strings.Fields(name)[0])
		}
	}
	slices.Sort(out)
	return out
}

// kubeProxyLeftovers lists the chains and jumps --cleanup must remove (§9.9).
func kubeProxyLeftovers(saved string) []string {
	owned := []string{"KUBE-SVC-", "KUBE-SVL-", "KUBE-SEP-", "KUBE-FW-", "KUBE-EXT-", "KUBE-SERVICES",
		"KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-PROXY-FIREWALL"}
	var left []string
	for _, line := range strings.Split(saved, "\n") {
		for _, o := range owned {
			if strings.Contains(line, o) {
				left = append(left, line)
				break
			}
		}
	}
	return left
}

// TestDryRunMatchesKernel checks that kproxy --dry-run prints the rules a
// running kproxy installs for the same manifests.
func TestDryRunMatchesKernel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	w := e.w
	web := service("web", "10.96.0.10", withNodePort(30080))
	aff := service("sticky", "10.96.0.11", withAffinity(60))
	empty := service("empty", "10.96.0.12")
	e.start(web, slice(web, "a", endpoint(w, w.Pods[0]), endpoint(w, w.Pods[1]), endpoint(w, w.RemotePods[0])),
		aff, slice(aff, "a", endpoint(w, w.Pods[2])), empty, slice(empty, "a"))
	e.waitSynced()
	e.waitForRule("filter", "e2e/empty:p has no endpoints")

	want := kubeView(t, e.dryRun(v1.IPv4Protocol))
	got := kubeView(t, []byte(e.save("nat")+e.save("filter")))
	if !slices.Equal(got, want) {
		t.Errorf("kernel rules differ from --dry-run output\n--- dry-run:\n%s\n--- kernel:\n%s",
			strings.Join(want, "\n"), strings.Join(got, "\n"))
	}
	if len(want) < 20 {
		t.Errorf("suspiciously few KUBE rules compared (%d):\n%s", len(want), strings.Join(want, "\n"))
	}
}

// kubeView normalizes a rule set and keeps, per table, the KUBE-* chain
// declarations and rules and the jumps from built-in chains to KUBE-*
// chains. Jumps inserted with "-I CHAIN 1" count as appended; they are
// sorted, since their order depends on the insertion history.
func kubeView(t *testing.T, data []byte) []string {
	t.Helper()
	norm, err := ruleset.Normalize(data, v1.IPv4Protocol)
	if err != nil {
		t.Fatalf("normalize:\n%s\n%v", data, err)
	}
	var out, jumps []string
	table := ""
	for _, line := range strings.Split(string(norm), "\n") {
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "*"):
			out, jumps, table = append(out, jumpsSorted(jumps)...), nil, line
			if table == "*nat" || table == "*filter" {
				out = append(out, line)
			}
		case table == "*nat" || table == "*filter":
			if len(f) >= 2 && (f[0] == "-A" || f[0] == "-I") && !strings.HasPrefix(f[1], "KUBE-") &&
				strings.Contains(line, " -j KUBE-") {
				if f[0] == "-I" {
					f = append(f[:2:2], f[3:]...) // drop the position
				}
				jumps = append(jumps, "-A "+strings.Join(f[1:], " "))
			} else if strings.HasPrefix(line, ":KUBE-") || strings.HasPrefix(line, "-A KUBE-") {
				out = append(out, line)
			}
		}
	}
	return append(out, jumpsSorted(jumps)...)
}

func jumpsSorted(j []string) []string {
	slices.Sort(j)
	return j
}

// --- helpers shared by this package's lifecycle, UDP, IPv6, bad-input and server tests ---

// waitSynced waits until the current kproxy process has synced IPv4 rules.
func (e *env) waitSynced() {
	e.t.Helper()
	e.eventually(syncTimeout, "kproxy synced IPv4 rules", func() error {
		if e.syncCount() > 0 {
			return nil
		}
		select {
		case <-e.kproxy.Done():
			e.t.Fatalf("kproxy exited: %v\n%s", e.kproxy.Err(), tail(e.kproxy.Output(), 40))
		default:
		}
		return errors.New("no IPv4 \"Synced rules\" log line yet")
	})
}

// syncCount is how many IPv4 syncs the current kproxy process has logged.
func (e *env) syncCount() int {
	n := 0
	for _, line := range strings.Split(e.kproxy.Output(), "\n") {
		if strings.Contains(line, "Synced rules") && strings.Contains(line, `ipFamily="IPv4"`) {
			n++
		}
	}
	return n
}

// waitNoRule waits until the node's table no longer contains substr.
func (e *env) waitNoRule(table, substr string) {
	e.t.Helper()
	e.eventually(settleTimeout, "no rule "+substr, func() error {
		if e.mode == "nftables" {
			// nft prints an IPv4 endpoint ip:port as "ip . port".
			return e.nftLiveLines(strings.Replace(substr, ":", " . ", 1))
		}
		if strings.Contains(e.save(table), substr) {
			return fmt.Errorf("%q still in %s table", substr, table)
		}
		return nil
	})
}

// nftLiveLines fails when a rule or element of table ip kube-proxy still
// contains substr (nftables mode: a stale chain is flushed at once, deleted a
// sync later, so its empty declaration does not count).
func (e *env) nftLiveLines(substr string) error {
	for line := range strings.SplitSeq(e.nftList("ip"), "\n") {
		l := strings.TrimSpace(line)
		if strings.Contains(l, substr) && !strings.HasPrefix(l, "chain ") {
			return fmt.Errorf("%q still in table ip kube-proxy: %s", substr, l)
		}
	}
	return nil
}

// restore applies iptables-restore --noflush input in the node namespace.
func (e *env) restore(data []byte) {
	e.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", e.w.Node, "iptables-restore", "--noflush")
	cmd.Stdin = bytes.NewReader(data)
	if out, err := cmd.CombinedOutput(); err != nil {
		e.t.Fatalf("iptables-restore in %s: %v\n%s\ninput:\n%s", e.w.Node, err, out, data)
	}
}

// dryRun runs kproxy --dry-run on the current manifests in the node
// namespace and returns its restore input for one family.
func (e *env) dryRun(fam v1.IPFamily) []byte {
	e.t.Helper()
	argv := append([]string{"netns", "exec", e.w.Node}, append(e.kproxyArgs(), "--dry-run")...)
	cmd := exec.Command("ip", argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		e.t.Fatalf("kproxy --dry-run: %v\n%s", err, tail(stderr.String(), 40))
	}
	out := stdout.String()
	header := "# kproxy --dry-run: " + string(fam) + " "
	start := strings.Index(out, header)
	if start < 0 {
		e.t.Fatalf("kproxy --dry-run printed no %s section:\n%s", fam, out)
	}
	section := out[start:]
	if next := strings.Index(section[len(header):], "# kproxy --dry-run: "); next >= 0 {
		section = section[:len(header)+next]
	}
	return []byte(section)
}

// openLongLived opens n long-lived connections from ns to addr.
// startWebUnderTraffic starts kproxy on Service web (10.96.0.10:80) over
// the three pods and, once it answers, opens 3 long-lived connections from
// the client and a loop of new connections from pod-1.
func (e *env) startWebUnderTraffic() (svc *v1.Service, vip string, conns []*probe.Conn, loop *traffic) {
	e.t.Helper()
	w := e.w
	vip = "10.96.0.10:80"
	svc = service("web", "10.96.0.10")
	e.start(svc, slice(svc, "a", endpoint(w, w.Pods[0]), endpoint(w, w.Pods[1]), endpoint(w, w.Pods[2])))
	e.waitAnswer(w.Pods[0].Netns, vip)
	return svc, vip, e.openLongLived(w.Client, vip, 3), startTraffic(w.Pods[0].Netns, vip)
}

func (e *env) openLongLived(ns, addr string, n int) []*probe.Conn {
	e.t.Helper()
	var conns []*probe.Conn
	for range n {
		c, err := probe.OpenLongLived(ns, addr, probeTimeout)
		if err != nil {
			e.t.Fatalf("open long-lived connection: %v", err)
		}
		e.t.Cleanup(func() { c.Close() })
		conns = append(conns, c)
	}
	return conns
}

// pingAll checks every long-lived connection still echoes, from the pod it first reached.
func pingAll(t *testing.T, conns []*probe.Conn) {
	t.Helper()
	for i, c := range conns {
		pod, err := c.Ping()
		if err != nil {
			t.Errorf("long-lived connection %d (to %s, from %s): %v", i, c.First.Pod, c.LocalAddr(), err)
			continue
		}
		if pod != c.First.Pod {
			t.Errorf("long-lived connection %d moved from %s to %s", i, c.First.Pod, pod)
		}
	}
}

// assertSingleJumps checks that every jump from a built-in chain into a
// KUBE-* chain exists once, and the PREROUTING → KUBE-SERVICES jump exactly once.
func (e *env) assertSingleJumps() {
	e.t.Helper()
	for _, table := range []string{"nat", "filter"} {
		seen := map[string]int{}
		for _, line := range strings.Split(e.save(table), "\n") {
			f := strings.Fields(line)
			if len(f) > 1 && f[0] == "-A" && !strings.HasPrefix(f[1], "KUBE-") && strings.Contains(line, "-j KUBE-") {
				seen[line]++
			}
		}
		for line, n := range seen {
			if n > 1 {
				e.t.Errorf("%s: jump rule appears %d times: %s", table, n, line)
			}
		}
		if table == "nat" {
			n := 0
			for line := range seen {
				if strings.HasPrefix(line, "-A PREROUTING") && strings.HasSuffix(line, "-j KUBE-SERVICES") {
					n += seen[line]
				}
			}
			if n != 1 {
				e.t.Errorf("nat PREROUTING has %d jumps to KUBE-SERVICES, want 1", n)
			}
		}
	}
}

// traffic makes new TCP connections in a loop until finish, counting failures.
type traffic struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	ok   int
	errs []error
}

// maxTrafficConns bounds the loop should finish never be called in time.
const maxTrafficConns = 20000

func startTraffic(ns, addr string) *traffic {
	tr := &traffic{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		for range maxTrafficConns {
			select {
			case <-tr.stop:
				return
			default:
			}
			_, err := probe.TCP(ns, addr, probeTimeout)
			tr.mu.Lock()
			if err != nil {
				tr.errs = append(tr.errs, fmt.Errorf("%s: %w", time.Now().Format("15:04:05.000"), err))
			} else {
				tr.ok++
			}
			tr.mu.Unlock()
		}
	}()
	return tr
}

// finish stops the loop and fails t if any connection failed or too few were made.
func (tr *traffic) finish(t *testing.T) {
	t.Helper()
	close(tr.stop)
	<-tr.done
	if len(tr.errs) > 0 {
		t.Errorf("%d of %d new connections failed; first: %v", len(tr.errs), len(tr.errs)+tr.ok, tr.errs[0])
	}
	t.Logf("traffic loop: %d new connections succeeded, %d failed", tr.ok, len(tr.errs))
	if tr.ok < 10 {
		t.Errorf("only %d new connections were made during the test; the traffic check proves nothing", tr.ok)
	}
}
