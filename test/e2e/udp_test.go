package e2e

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	vnetns "github.com/vishvananda/netns"
	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/test/kerneltest"
	"github.com/kproxy/kproxy/test/netns"
	"github.com/kproxy/kproxy/test/probe"
)

// TestUDPConntrackCleanup keeps one UDP socket (fixed source port) talking to
// a UDP ClusterIP, removes the endpoint that answers it, and checks that the
// next datagram from the same socket reaches a live pod.
//
// Why the test can fail: UDP has no connection to reset, and the node's
// conntrack entry for the socket's 5-tuple keeps its DNAT to the first pod
// as long as datagrams keep refreshing it. The removed pod's server still
// runs, so without kproxy deleting that entry the next datagram would be
// answered by the removed pod. The test checks this premise first: the entry
// exists and several datagrams stick to the same pod.
func TestUDPConntrackCleanup(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		e := newEnv(t, envOptions{Mode: mode})
		w := e.w
		const vip = "10.96.0.30"
		svc := service("dns", vip, withProtocol(v1.ProtocolUDP))
		e.start(svc, slice(svc, "a", endpoint(w, w.Pods[0]), endpoint(w, w.Pods[1]), endpoint(w, w.Pods[2])))
		e.eventually(settleTimeout, "UDP ClusterIP answers", func() error {
			_, err := probe.UDP(w.Client, vip+":80", probeTimeout)
			return err
		})

		conn := e.dialUDP(w.Client, vip+":80")
		first := e.exchangeUDP(conn)
		for range 5 {
			if pod := e.exchangeUDP(conn); pod != first {
				t.Fatalf("datagrams of one socket moved from %s to %s without any change: conntrack premise broken", first, pod)
			}
		}
		gone, kept := splitPods(w.Pods, first)
		if n := e.udpFlows(vip, gone.IPv4.String()); n == 0 {
			t.Fatalf("no conntrack entry from %s to %s via %s: premise broken\n%s", conn.LocalAddr(), gone.Name, vip,
				e.run(w.Node, "conntrack", "-L", "-p", "udp"))
		}

		e.apply(svc, slice(svc, "a", endpoint(w, kept[0]), endpoint(w, kept[1])))
		e.waitNoRule("nat", gone.IPv4.String()+":8080")
		// Not fatal: without cleanup the datagram below shows the consequence.
		deadline := time.Now().Add(10 * time.Second)
		for e.udpFlows(vip, gone.IPv4.String()) > 0 {
			if time.Now().After(deadline) {
				t.Errorf("10s after the endpoint change, UDP flows via %s still go to removed %s", vip, gone.IPv4)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if pod := e.exchangeUDP(conn); pod == gone.Name {
			t.Errorf("next datagram from the same socket still reached removed endpoint %s", gone.Name)
		}
	})
}

// splitPods returns the pod named name and the others.
func splitPods(pods []netns.Pod, name string) (netns.Pod, []netns.Pod) {
	var found netns.Pod
	var rest []netns.Pod
	for _, p := range pods {
		if p.Name == name {
			found = p
		} else {
			rest = append(rest, p)
		}
	}
	return found, rest
}

// udpFlows counts the node's UDP conntrack entries to vip answered by podIP.
func (e *env) udpFlows(vip, podIP string) int {
	out, err := e.w.Exec(e.w.Node, "conntrack", "-L", "-p", "udp", "--orig-dst", vip, "--reply-src", podIP)
	if err != nil && !strings.Contains(string(out), "0 flow entries") {
		e.t.Fatalf("conntrack -L: %v", err)
	}
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "udp") {
			n++
		}
	}
	return n
}

// dialUDP creates a connected UDP socket inside ns and keeps it (and its
// source port) for the test's lifetime. The socket is created on a locked
// thread that has entered ns; the thread is discarded if it cannot go back.
func (e *env) dialUDP(ns, addr string) *net.UDPConn {
	e.t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		e.t.Fatal(err)
	}
	type result struct {
		c   *net.UDPConn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		c, restored, err := dialUDPOnThread(netns.Path(ns), raddr)
		if restored {
			runtime.UnlockOSThread()
		}
		ch <- result{c, err}
	}()
	r := <-ch
	if r.err != nil {
		e.t.Fatalf("UDP socket in %s: %v", ns, r.err)
	}
	e.t.Cleanup(func() { r.c.Close() })
	return r.c
}

func dialUDPOnThread(path string, raddr *net.UDPAddr) (c *net.UDPConn, restored bool, err error) {
	orig, err := vnetns.Get()
	if err != nil {
		return nil, true, err
	}
	defer orig.Close()
	dest, err := vnetns.GetFromPath(path)
	if err != nil {
		return nil, true, err
	}
	defer dest.Close()
	if err := vnetns.Set(dest); err != nil {
		return nil, false, err
	}
	c, dialErr := net.DialUDP("udp", nil, raddr)
	if err := vnetns.Set(orig); err != nil {
		if dialErr == nil {
			c.Close()
		}
		return nil, false, err
	}
	return c, true, dialErr
}

// exchangeUDP sends one datagram and returns the name of the pod that answered.
func (e *env) exchangeUDP(c *net.UDPConn) string {
	e.t.Helper()
	if err := c.SetDeadline(time.Now().Add(probeTimeout)); err != nil {
		e.t.Fatal(err)
	}
	if _, err := c.Write([]byte("probe\n")); err != nil {
		e.t.Fatalf("UDP send from %s: %v", c.LocalAddr(), err)
	}
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		e.t.Fatalf("UDP reply to %s: %v", c.LocalAddr(), err)
	}
	f := strings.Fields(string(buf[:n]))
	if len(f) != 2 {
		e.t.Fatalf("UDP reply %q: want \"<pod> <ip:port>\"", buf[:n])
	}
	return f[0]
}

// TestSCTPClusterIP checks an SCTP ClusterIP: the kernel must accept the
// SCTP rules (always checked), and a pod must reach every endpoint over SCTP.
// The traffic half needs SCTP sockets (CONFIG_IP_SCTP). On a host kernel
// without them it runs elsewhere: inside the qemu guest, whose kernel has
// them (test/vm TestSCTPTrafficInGuest runs this test there in iptables and
// nftables modes, TestIPVSModeTrafficInGuest in IPVS mode, under
// KPROXY_KERNEL_TESTS=require). Inside the guest, no SCTP is a failure
// under require. Other errors fail.
func TestSCTPClusterIP(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		e := newEnv(t, envOptions{Mode: mode})
		w := e.w
		sctpErr := probe.SCTPSupported(w.Pods[0].Netns)
		if sctpErr != nil && !errors.Is(sctpErr, probe.ErrUnsupported) {
			t.Fatalf("SCTP: %v", sctpErr)
		}
		if sctpErr != nil {
			svc := service("sctp", "10.96.0.40", withProtocol(v1.ProtocolSCTP))
			e.start(svc, slice(svc, "a", endpoint(w, w.Pods[0]), endpoint(w, w.Pods[1])))
			e.waitForProgrammed("nat", "-d 10.96.0.40/32 -p sctp -m comment --comment \"e2e/sctp:p cluster IP\" -m sctp --dport 80", "10.96.0.40 . sctp . 80")
			e.waitForProgrammed("nat", "-p sctp -m comment --comment \"e2e/sctp:p\" -m sctp -j DNAT --to-destination 10.244.1.12:8080", "10.244.1.12 . 8080")
			if kerneltest.InGuest() {
				kerneltest.SkipOrFail(t, fmt.Sprintf("SCTP traffic: the guest kernel has no SCTP sockets: %v", sctpErr))
			}
			kerneltest.RunsElsewhere(t, fmt.Sprintf("SCTP traffic (rules checked here; this kernel has no SCTP sockets: %v) "+
				"inside the qemu guest, started by test/vm TestSCTPTrafficInGuest", sctpErr))
		}
		for _, pod := range w.Pods {
			if _, err := w.StartPodserver(podserverBin, pod, netns.ServerPorts{SCTP: []int{podPort}}); err != nil {
				t.Fatalf("SCTP pod server: %v", err)
			}
		}
		const vip = "10.96.0.40:80"
		svc := service("sctp", "10.96.0.40", withProtocol(v1.ProtocolSCTP))
		e.start(svc, slice(svc, "a", endpoint(w, w.Pods[0]), endpoint(w, w.Pods[1]), endpoint(w, w.Pods[2])))
		if mode != "ipvs" { // IPVS mode has an SCTP virtual server, not SCTP rules
			e.waitForProgrammed("nat", "-p sctp", "sctp")
		}
		seen := map[string]int{}
		e.eventually(20*time.Second, "SCTP ClusterIP reaches every endpoint", func() error {
			a, err := probe.SCTP(w.Pods[1].Netns, vip, probeTimeout)
			if err != nil {
				return err
			}
			seen[a.Pod]++
			if len(seen) < len(w.Pods) {
				return fmt.Errorf("answers so far: %v", seen)
			}
			return nil
		})
		t.Logf("SCTP %s mode: %s answered by every endpoint %v", mode, vip, seen)
		checkSCTPSource(t, w, vip)
	})
}

// checkSCTPSource probes from pod-2 until another pod answers: that pod must
// see pod-2's own address. When pod-2 reaches itself (hairpin), the rules
// masquerade, as upstream's do, so the source must not be pod-2's address.
func checkSCTPSource(t *testing.T, w *netns.World, vip string) {
	t.Helper()
	from := w.Pods[1]
	for range 30 {
		a, err := probe.SCTP(from.Netns, vip, probeTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if a.Pod == from.Name {
			if a.SeenSource == from.IPv4.String() {
				t.Fatalf("SCTP hairpin from %s to itself must be masqueraded, backend saw %s", from.Name, a.SeenSource)
			}
			continue
		}
		if a.SeenSource != from.IPv4.String() {
			t.Fatalf("SCTP from a pod must keep its source: %s saw %s, want %s", a.Pod, a.SeenSource, from.IPv4)
		}
		return
	}
	t.Fatalf("30 SCTP probes from %s were all answered by itself", from.Name)
}
