package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kproxy/kproxy/test/kerneltest"
)

const (
	// conntrackMax is the guest's nf_conntrack_max during the test.
	conntrackMax = 128
	// fillerSource is the source address of the entries that fill the
	// table (TEST-NET-2 benchmarking range: nothing real uses it).
	fillerSource = "198.18.0.1"
	// ctMaxSysctl is nf_conntrack_max in the guest's own namespace: the
	// kernel makes it read-only in any other (and the limit is global,
	// while each namespace counts its own entries).
	ctMaxSysctl = "/proc/sys/net/netfilter/nf_conntrack_max"
	// fullSpan is how long new connections are tried against the full table.
	fullSpan = 5 * time.Second
)

// TestFaultConntrackTableFull fills the node's conntrack table while
// connections flow through a ClusterIP. While it is full, kproxy must keep
// running and still program a Service change (rules need no conntrack
// entry), established connections must keep working (their entries exist),
// and new connections fail (the kernel drops a packet it cannot track: the
// test reports how many); once the filler entries are deleted, new
// connections and the Service added meanwhile must work.
//
// It lowers nf_conntrack_max, which the host kernel keeps read-only inside
// a network namespace and which this test must never touch on the host, so
// it runs only inside the qemu guest (the guest is ours), started by
// test/vm TestFaultConntrackFullInGuest. The table is filled with `conntrack
// -I` entries marked ASSURED: the kernel evicts only unassured entries to
// make room (early drop), so plain UDP from the client would not keep it full.
func TestFaultConntrackTableFull(t *testing.T) {
	kerneltest.GuestOnly(t, "test/vm TestFaultConntrackFullInGuest")
	kerneltest.NeedTools(t, "conntrack-full fault test", "conntrack", "sh")
	e := newEnv(t, envOptions{}) // not parallel: nf_conntrack_max is global
	w := e.w
	const vip, vipB = "10.96.0.100:80", "10.96.0.101:80"
	svc, svcB := service("ct", "10.96.0.100"), service("ct-b", "10.96.0.101")
	objs := []any{svc, slice(svc, "a", endpoint(w, w.Pods[1]), endpoint(w, w.Pods[2]))}
	e.start(objs...)
	e.waitAnswer(w.Pods[0].Netns, vip)
	conns := e.openLongLived(w.Pods[0].Netns, vip, 3)

	setConntrackMax(t, conntrackMax)
	inserted := e.fillConntrack()
	traffic := startTrafficLog(w.Pods[0].Netns, vip, faultPace)
	full := time.Now()
	e.apply(append(objs, svcB, slice(svcB, "b", endpoint(w, w.Pods[0])))...)
	programmed := e.waitForTime(settleTimeout, "Service added with the table full is programmed", func() error {
		return e.programmed("10.96.0.101")
	})
	keptFull, errsFull := pingCount(conns)
	time.Sleep(time.Until(full.Add(fullSpan))) // a span of new connections against the full table
	whileFull := summarize(since(traffic.finish(), full))
	count := e.conntrackCount()

	e.run(w.Node, "conntrack", "-D", "-s", fillerSource)
	freed := time.Now()
	traffic = startTrafficLog(w.Pods[0].Netns, vip, faultPace)
	e.waitAnswer(w.Pods[0].Netns, vipB)
	e.waitAttempts(traffic, 10)
	after := summarize(since(traffic.finish(), freed))
	keptAfter, errsAfter := pingCount(conns)

	logFault(t, fmt.Sprintf("conntrack table full (nf_conntrack_max %d, %d ASSURED filler entries, %d entries at the end)",
		conntrackMax, inserted, count), whileFull, fmt.Sprintf("kept %d of %d while full, %d after", keptFull, len(conns), keptAfter),
		fmt.Sprintf("Service added while full programmed in %v", programmed.Sub(full).Round(time.Millisecond)),
		fmt.Sprintf("after freeing the entries: %d tried, %d failed, first success %v after the free",
			after.tried, after.failed, firstSuccess(after, freed)))

	if whileFull.failed == 0 {
		t.Errorf("no new connection failed with the table full (%d entries); the test proves nothing", count)
	}
	if after.failed > 0 {
		t.Errorf("%d of %d new connections failed after the filler entries were deleted; first: %v", after.failed, after.tried, after.firstErr)
	}
	for _, err := range append(errsFull, errsAfter...) {
		t.Errorf("long-lived %s", err)
	}
	e.requireRunning()
}

// firstSuccess says how long after from the first successful attempt began.
func firstSuccess(s trafficSummary, from time.Time) string {
	if !s.recovered.IsZero() {
		return s.recovered.Sub(from).Round(time.Millisecond).String()
	}
	if s.failed == 0 {
		return "0s (none failed)"
	}
	return "never"
}

// setConntrackMax sets the guest's nf_conntrack_max and restores it when the test ends.
func setConntrackMax(t *testing.T, n int) {
	t.Helper()
	old, err := os.ReadFile(ctMaxSysctl)
	if err != nil {
		t.Fatalf("read nf_conntrack_max: %v", err)
	}
	if err := os.WriteFile(ctMaxSysctl, []byte(strconv.Itoa(n)), 0o644); err != nil {
		t.Fatalf("set nf_conntrack_max: %v", err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(ctMaxSysctl, old, 0o644); err != nil {
			t.Errorf("restore nf_conntrack_max: %v", err)
		}
	})
}

// fillConntrack deletes the node's closed TCP entries (the kernel would
// evict them for new connections), then inserts ASSURED UDP entries from
// fillerSource until the kernel refuses one, and returns how many it took.
func (e *env) fillConntrack() int {
	e.t.Helper()
	for _, state := range []string{"TIME_WAIT", "CLOSE", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK"} {
		e.w.Exec(e.w.Node, "conntrack", "-D", "-p", "tcp", "--state", state) // none left is an error: fine
	}
	script := fmt.Sprintf(`i=0
while [ $i -lt %d ]; do
  conntrack -I -p udp -s %s -d 198.18.0.2 --sport $((20000+i)) --dport 53 -t 600 -u ASSURED,SEEN_REPLY >/dev/null 2>&1 || break
  i=$((i+1))
done
echo $i`, 4*conntrackMax, fillerSource)
	n, err := strconv.Atoi(strings.TrimSpace(e.run(e.w.Node, "sh", "-c", script)))
	if err != nil {
		e.t.Fatalf("fill conntrack: %v", err)
	}
	if n == 0 || n >= 4*conntrackMax {
		e.t.Fatalf("inserted %d conntrack entries with nf_conntrack_max %d: the table never filled", n, conntrackMax)
	}
	if got := e.conntrackCount(); got < conntrackMax {
		e.t.Fatalf("conntrack count %d after the fill, want %d", got, conntrackMax)
	}
	return n
}

// conntrackCount is nf_conntrack_count in the node namespace.
func (e *env) conntrackCount() int {
	e.t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(e.run(e.w.Node, "cat", "/proc/sys/net/netfilter/nf_conntrack_count")))
	if err != nil {
		e.t.Fatalf("nf_conntrack_count: %v", err)
	}
	return n
}

// programmed reports whether the node's rules (iptables or IPVS mode) serve
// the ClusterIP ip on port 80, without sending traffic.
func (e *env) programmed(ip string) error {
	if os.Getenv("KPROXY_E2E_PROXY_MODE") == "ipvs" {
		if _, found := e.ipvsDests(ip + ":80"); !found {
			return fmt.Errorf("no IPVS virtual server %s:80", ip)
		}
		return nil
	}
	if !strings.Contains(e.save("nat"), "-d "+ip+"/32 -p tcp") {
		return fmt.Errorf("no nat rule for %s", ip)
	}
	return nil
}
