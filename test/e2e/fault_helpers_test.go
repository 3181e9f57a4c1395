package e2e

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kproxy/kproxy/test/probe"
)

// Helpers of the fault tests (fault_*_test.go, cluster_flap_test.go): a
// traffic loop that keeps every attempt with its time, so a test can say
// how many new connections were tried and failed during a fault and when
// traffic recovered, and checks that run in both proxy modes.

const (
	// faultPace spaces the fault tests' new connections (20 a second).
	faultPace = 50 * time.Millisecond
	// faultProbeTimeout bounds one new connection during a fault: long
	// enough for a loaded machine, short enough to see recovery closely.
	faultProbeTimeout = time.Second
)

// attempt is one new connection of a trafficLog.
type attempt struct {
	at  time.Time
	err error
}

// trafficLog makes new TCP connections to addr from ns, one per pace,
// until stop, and keeps every attempt.
type trafficLog struct {
	stop, done chan struct{}
	mu         sync.Mutex
	attempts   []attempt
}

func startTrafficLog(ns, addr string, pace time.Duration) *trafficLog {
	l := &trafficLog{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(pace)
		defer tick.Stop()
		for range maxTrafficConns {
			at := time.Now()
			_, err := probe.TCP(ns, addr, faultProbeTimeout)
			l.mu.Lock()
			l.attempts = append(l.attempts, attempt{at: at, err: err})
			l.mu.Unlock()
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return l
}

// finish stops the loop and returns every attempt.
func (l *trafficLog) finish() []attempt {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.attempts)
}

// since is what happened from `from` on (made at or after it).
func since(all []attempt, from time.Time) []attempt {
	i, _ := slices.BinarySearchFunc(all, from, func(a attempt, t time.Time) int { return a.at.Compare(t) })
	return all[i:]
}

// trafficSummary counts attempts and finds when traffic came back.
type trafficSummary struct {
	tried, failed int
	firstErr      error
	// recovered is the start of the first successful attempt after the
	// last failure (zero when nothing failed or nothing succeeded after).
	recovered time.Time
}

func summarize(attempts []attempt) trafficSummary {
	var s trafficSummary
	last := -1
	for i, a := range attempts {
		s.tried++
		if a.err != nil {
			s.failed++
			last = i
			if s.firstErr == nil {
				s.firstErr = a.err
			}
		}
	}
	if last >= 0 && last+1 < len(attempts) {
		s.recovered = attempts[last+1].at
	}
	return s
}

// waitForTime polls cond every 50 ms until it holds or timeout passes, and
// returns when it first held.
func (e *env) waitForTime(timeout time.Duration, what string, cond func() error) time.Time {
	e.t.Helper()
	e.eventually(timeout, what, cond)
	return time.Now()
}

// tamperChecksHold is the tamper monitor's view, read with save (a
// function returning iptables-save output of one table in the node): the
// canaries in mangle, nat and filter and the jumps from nat PREROUTING and
// OUTPUT to KUBE-SERVICES.
func tamperChecksHold(save func(table string) string) error {
	nat := save("nat")
	for _, from := range []string{"PREROUTING", "OUTPUT"} {
		if !strings.Contains(nat, "-A "+from+` -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`) {
			return fmt.Errorf("no jump from nat %s to KUBE-SERVICES", from)
		}
	}
	for _, table := range []string{"mangle", "nat", "filter"} {
		text := nat
		if table != "nat" {
			text = save(table)
		}
		if !strings.Contains(text, ":KUBE-PROXY-CANARY ") {
			return fmt.Errorf("no KUBE-PROXY-CANARY in %s", table)
		}
	}
	return nil
}

// ruleLines is iptables-save output as a sorted set of chain and rule
// lines (no comments, no counters), to compare tables before and after a
// rewrite that may declare chains in another order.
func ruleLines(save string) []string {
	var out []string
	for _, l := range strings.Split(save, "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, ":") {
			if i := strings.LastIndex(l, " ["); i > 0 {
				l = l[:i]
			}
		}
		out = append(out, l)
	}
	slices.Sort(out)
	return out
}

// logFault prints the line each fault test reports.
func logFault(t *testing.T, fault string, s trafficSummary, longLived string, extra ...string) {
	t.Helper()
	line := fmt.Sprintf("fault %s: %d new connections tried, %d failed; long-lived %s", fault, s.tried, s.failed, longLived)
	if s.firstErr != nil {
		line += fmt.Sprintf(" (first failure: %v)", s.firstErr)
	}
	for _, x := range extra {
		line += "; " + x
	}
	t.Log(line)
}

// pingCount pings every long-lived connection and says how many kept
// working with their first pod.
func pingCount(conns []*probe.Conn) (kept int, errs []string) {
	for i, c := range conns {
		pod, err := c.Ping()
		switch {
		case err != nil:
			errs = append(errs, fmt.Sprintf("connection %d: %v", i, err))
		case pod != c.First.Pod:
			errs = append(errs, fmt.Sprintf("connection %d moved from %s to %s", i, c.First.Pod, pod))
		default:
			kept++
		}
	}
	return kept, errs
}
