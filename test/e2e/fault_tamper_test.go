package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kproxy/kproxy/test/probe"
)

// tamperFault is someone else removing kproxy's rules in the node.
type tamperFault struct {
	name     string
	commands [][]string
	// checks are the tamper checks kproxy must name (and no others).
	checks []string
}

func tamperFaults() []tamperFault {
	portals := []string{"-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES"}
	ipt := func(args ...string) []string { return append([]string{"iptables", "-t", "nat"}, args...) }
	return []tamperFault{
		{name: "only the nat table flushed (iptables -t nat -F; -X)",
			commands: [][]string{ipt("-F"), ipt("-X")},
			checks:   []string{"nat/KUBE-PROXY-CANARY", "nat/PREROUTING -j KUBE-SERVICES", "nat/OUTPUT -j KUBE-SERVICES"}},
		{name: "KUBE-SERVICES deleted as a firewalld reload does",
			commands: [][]string{ipt(append([]string{"-D", "PREROUTING"}, portals...)...),
				ipt(append([]string{"-D", "OUTPUT"}, portals...)...), ipt("-F", "KUBE-SERVICES"), ipt("-X", "KUBE-SERVICES")},
			checks: []string{"nat/PREROUTING -j KUBE-SERVICES", "nat/OUTPUT -j KUBE-SERVICES"}},
	}
}

// TestFaultRulesRemovedBehindKproxysBack removes kproxy's rules in two ways
// upstream's mangle-only canary misses, while new connections flow through a
// ClusterIP and long-lived ones through it and a NodePort. kproxy must name
// the failed checks, put every nat rule back as it was within syncPeriod
// (plus the full sync's own time), and keep the long-lived connections.
// Runs in both modes (IPVS mode in the guest's list).
func TestFaultRulesRemovedBehindKproxysBack(t *testing.T) {
	t.Parallel()
	for _, f := range tamperFaults() {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			runTamperFault(t, f)
		})
	}
}

func runTamperFault(t *testing.T, f tamperFault) {
	e := newEnv(t, envOptions{})
	w := e.w
	const vip, nodePort = "10.96.0.80:80", 30080
	svc := service("web", "10.96.0.80", withNodePort(nodePort))
	e.start(svc, slice(svc, "a", endpoint(w, w.Pods[1]), endpoint(w, w.Pods[2])))
	e.waitAnswer(w.Pods[0].Netns, vip)
	e.waitAnswer(w.Client, nodeAddr(w, nodePort))
	e.eventually(settleTimeout, "canaries and jumps in place", func() error { return tamperChecksHold(e.save) })
	before := ruleLines(e.save("nat"))
	conns := append(e.openLongLived(w.Client, nodeAddr(w, nodePort), 2), e.openLongLived(w.Pods[0].Netns, vip, 2)...)

	traffic := startTrafficLog(w.Pods[0].Netns, vip, faultPace)
	fault := e.tamper(f.commands, traffic)
	back := e.waitForTime(syncPeriod+20*time.Second, "tamper checks hold again", func() error {
		return tamperChecksHold(e.save)
	})
	e.eventually(settleTimeout, "traffic through the ClusterIP again", func() error {
		_, err := probe.TCP(w.Pods[0].Netns, vip, probeTimeout)
		return err
	})
	e.waitAttempts(traffic, 20) // a steady stretch after recovery
	s := summarize(since(traffic.finish(), fault))
	kept, errs := pingCount(conns)
	recovered := "traffic never failed"
	if !s.recovered.IsZero() {
		recovered = fmt.Sprintf("new connections recovered %v after the fault", s.recovered.Sub(fault).Round(time.Millisecond))
	}
	logFault(t, f.name, s, fmt.Sprintf("kept %d of %d", kept, len(conns)),
		fmt.Sprintf("rules back %v after the fault", back.Sub(fault).Round(time.Millisecond)), recovered)

	for _, err := range errs {
		t.Errorf("long-lived %s", err)
	}
	// The monitor notices within syncPeriod; the rewrite then takes what
	// kproxy's full sync takes here (seconds in the emulated guest); 3 s
	// more cover this test's own polling with iptables-save.
	rewrite := e.rewriteElapsed()
	if d := back.Sub(fault); d > syncPeriod+rewrite+3*time.Second {
		t.Errorf("rules came back %v after the fault; want within syncPeriod (%v) plus the full sync (%v) plus 3s",
			d, syncPeriod, rewrite)
	}
	if after := ruleLines(e.save("nat")); !slices.Equal(before, after) {
		t.Errorf("nat table after the rewrite differs from before the fault:\n%s",
			lineDiff(strings.Join(before, "\n"), strings.Join(after, "\n")))
	}
	e.checkTamperLog(f.checks)
	e.requireRunning()
}

// tamper waits until the traffic loop has made a few connections, runs the
// commands in the node and returns when. (That they removed what the checks
// look at is shown by kproxy's log naming the failed checks, checkTamperLog:
// a check of the tables here could race with a quick rewrite.)
func (e *env) tamper(commands [][]string, traffic *trafficLog) time.Time {
	e.t.Helper()
	e.waitAttempts(traffic, 10)
	fault := time.Now()
	for _, c := range commands {
		e.run(e.w.Node, c...)
	}
	return fault
}

// waitAttempts waits until the loop has made n more attempts.
func (e *env) waitAttempts(l *trafficLog, n int) {
	e.t.Helper()
	l.mu.Lock()
	start := len(l.attempts)
	l.mu.Unlock()
	e.eventually(settleTimeout, fmt.Sprintf("%d more new connections", n), func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if got := len(l.attempts) - start; got < n {
			return fmt.Errorf("%d so far", got)
		}
		return nil
	})
}

// checkTamperLog checks kproxy's tamper line names exactly the wanted checks.
func (e *env) checkTamperLog(want []string) {
	e.t.Helper()
	var line string
	for _, l := range strings.Split(e.kproxy.Output(), "\n") {
		if strings.Contains(l, "Rules were removed by someone else") {
			line = l
			break
		}
	}
	if line == "" {
		e.t.Errorf("kproxy did not log the tampering:\n%s", tail(e.kproxy.Output(), 30))
		return
	}
	all := []string{"mangle/KUBE-PROXY-CANARY", "nat/KUBE-PROXY-CANARY", "filter/KUBE-PROXY-CANARY",
		"nat/PREROUTING -j KUBE-SERVICES", "nat/OUTPUT -j KUBE-SERVICES"}
	for _, c := range all {
		if named, wanted := strings.Contains(line, `"`+c+`"`), slices.Contains(want, c); named != wanted {
			e.t.Errorf("check %s named=%v, want %v, in: %s", c, named, wanted, line)
		}
	}
}

// rewriteElapsed is how long kproxy's first full sync after it logged the
// tampering took (0 when not found: checkTamperLog then fails the test).
func (e *env) rewriteElapsed() time.Duration { return rewriteElapsed(e.kproxy.Output()) }

// rewriteElapsed reads, from kproxy's log, the elapsed time of the first
// full sync after the tampering line.
func rewriteElapsed(log string) time.Duration {
	seen := false
	for _, l := range strings.Split(log, "\n") {
		seen = seen || strings.Contains(l, "Rules were removed by someone else")
		if !seen || !strings.Contains(l, `"Synced rules"`) || !strings.Contains(l, " full=true ") {
			continue
		}
		if _, v, ok := strings.Cut(l, ` elapsed="`); ok {
			v, _, _ = strings.Cut(v, `"`)
			if d, err := time.ParseDuration(v); err == nil {
				return d
			}
		}
	}
	return 0
}

// requireRunning fails the test if kproxy has exited.
func (e *env) requireRunning() {
	e.t.Helper()
	select {
	case <-e.kproxy.Done():
		e.t.Fatalf("kproxy exited: %v\n%s", e.kproxy.Err(), tail(e.kproxy.Output(), 40))
	default:
	}
}
