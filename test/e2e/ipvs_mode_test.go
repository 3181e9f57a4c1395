package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	vnetns "github.com/vishvananda/netns"

	"github.com/kproxy/kproxy/test/kerneltest"
	"github.com/kproxy/kproxy/test/netns"
)

// These tests are about IPVS mode only: they run when KPROXY_E2E_PROXY_MODE=ipvs
// (in the qemu guest, test/vm's TestIPVSModeTrafficInGuest) and skip otherwise.

func requireIPVSMode(t *testing.T) {
	t.Helper()
	if os.Getenv("KPROXY_E2E_PROXY_MODE") != "ipvs" {
		kerneltest.RunsElsewhere(t, "in IPVS mode (KPROXY_E2E_PROXY_MODE=ipvs) inside the qemu guest, started by test/vm TestIPVSModeTrafficInGuest")
	}
}

// ipvsDests parses `ipvsadm -Ln` in the node namespace: the destinations of
// the TCP virtual server vip ("ip:port"), and whether the virtual server exists.
func (e *env) ipvsDests(vip string) (map[string]ipvsDestLine, bool) {
	e.t.Helper()
	vs, found := e.ipvsadm()["TCP "+vip]
	return vs.dests, found
}

func podEndpoint(p netns.Pod) string { return fmt.Sprintf("%s:%d", p.IPv4, podPort) }

// TestIPVSSessionAffinityIsPersistence checks sessionAffinity ClientIP in
// IPVS mode: the virtual server is persistent with the service's timeout,
// and every connection of one client reaches the same pod.
func TestIPVSSessionAffinityIsPersistence(t *testing.T) {
	requireIPVSMode(t)
	t.Parallel()
	e := newEnv(t, envOptions{})
	w := e.w
	sticky := service("sticky", "10.96.3.20", withAffinity(600))
	e.start(sticky, slice(sticky, "a", endpoint(w, w.Pods[0]), endpoint(w, w.Pods[1]), endpoint(w, w.RemotePods[0])))
	e.waitAnswer(w.Client, "10.96.3.20:80")
	if out := e.run(w.Node, "ipvsadm", "-Ln", "-t", "10.96.3.20:80"); !strings.Contains(out, "persistent 600") {
		t.Errorf("virtual server of a ClientIP-affinity service is not persistent 600:\n%s", out)
	}
	for _, from := range []string{w.Client, w.Pods[2].Netns} {
		const n = 30
		if counts := podCounts(e.answers(from, "10.96.3.20:80", n)); len(counts) != 1 {
			t.Errorf("from %s: %d connections reached %d pods (%v), want 1", from, n, len(counts), counts)
		}
	}
}

// TestIPVSGracefulTermination checks draining: when a pod's endpoint goes,
// its open connection keeps working while its destination stays at weight
// 0, new connections go to the other pods, and the destination is deleted
// once the connection is gone.
func TestIPVSGracefulTermination(t *testing.T) {
	requireIPVSMode(t)
	t.Parallel()
	e := newEnv(t, envOptions{})
	w := e.w
	const vip = "10.96.3.30:80"
	svc := service("drain", "10.96.3.30")
	e.start(svc, slice(svc, "a", endpoint(w, w.Pods[0]), endpoint(w, w.Pods[1]), endpoint(w, w.Pods[2])))
	e.waitAnswer(w.Client, vip)

	c := e.dialIn(w.Client, vip)
	x, ok := w.Pod(c.pod)
	if !ok {
		t.Fatalf("long-lived connection answered by unknown pod %q", c.pod)
	}
	var rest []netns.Pod
	for _, p := range w.Pods {
		if p.Name != x.Name {
			rest = append(rest, p)
		}
	}
	e.apply(svc, slice(svc, "a", endpoint(w, rest[0]), endpoint(w, rest[1])))
	e.eventually(settleTimeout, x.Name+" drains at weight 0", func() error {
		dests, _ := e.ipvsDests(vip)
		if d, ok := dests[podEndpoint(x)]; !ok || d.weight != 0 || d.active == 0 {
			return fmt.Errorf("destinations %v: want %s at weight 0 with an active connection", dests, podEndpoint(x))
		}
		return nil
	})
	if pod, err := c.ping(); err != nil || pod != x.Name {
		t.Fatalf("open connection to the draining pod %s: answered by %q, %v", x.Name, pod, err)
	}
	if counts := podCounts(e.answers(w.Client, vip, 20)); counts[x.Name] > 0 || len(counts) == 0 {
		t.Errorf("new connections reached the draining pod %s: %v", x.Name, counts)
	}
	if dests, _ := e.ipvsDests(vip); dests[podEndpoint(x)].weight != 0 {
		t.Errorf("draining destination left weight 0 early: %v", dests)
	}

	c.reset() // RST: IPVS keeps the entry 10 s (CLOSE) instead of 2 min (TIME_WAIT)
	e.eventually(45*time.Second, x.Name+" deleted after its connection closed", func() error {
		dests, _ := e.ipvsDests(vip)
		if _, ok := dests[podEndpoint(x)]; ok || len(dests) != 2 {
			return fmt.Errorf("destinations %v: want only %s and %s", dests, rest[0].Name, rest[1].Name)
		}
		return nil
	})
}

// TestIPVSCleanupFlag checks kproxy --cleanup after an IPVS-mode run:
// kproxy's virtual servers, kube-ipvs0, the KUBE-* ipsets and every KUBE-
// chain go; another program's virtual server stays (kproxy deletes only
// what it owns, unlike upstream's ipvs.Flush()).
func TestIPVSCleanupFlag(t *testing.T) {
	requireIPVSMode(t)
	t.Parallel()
	e := newEnv(t, envOptions{})
	w := e.w
	svc := service("web", "10.96.3.40", withNodePort(30081))
	e.start(svc, slice(svc, "a", endpoint(w, w.Pods[0])))
	e.waitAnswer(w.Client, nodeAddr(w, 30081))
	if err := e.kproxy.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	e.run(w.Node, "ipvsadm", "-A", "-t", "198.51.100.7:443", "-s", "rr")

	if out, err := w.Exec(w.Node, kproxyBin, "--cleanup"); err != nil {
		t.Fatalf("kproxy --cleanup must exit 0: %v\n%s", err, out)
	}
	for _, vip := range []string{"10.96.3.40:80", nodeAddr(w, 30081)} {
		if _, found := e.ipvsDests(vip); found {
			t.Errorf("virtual server %s survived --cleanup", vip)
		}
	}
	if _, found := e.ipvsDests("198.51.100.7:443"); !found {
		t.Error("--cleanup deleted another program's virtual server 198.51.100.7:443")
	}
	if out, err := w.Exec(w.Node, "ip", "link", "show", "kube-ipvs0"); err == nil {
		t.Errorf("kube-ipvs0 survived --cleanup:\n%s", out)
	}
	if sets := e.run(w.Node, "ipset", "list", "-n"); strings.Contains(sets, "KUBE-") {
		t.Errorf("ipsets survived --cleanup:\n%s", sets)
	}
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		for _, table := range []string{"nat", "filter"} {
			if saved := e.run(w.Node, tool, "-t", table); strings.Contains(saved, "KUBE-") {
				t.Errorf("%s -t %s after --cleanup:\n%s", tool, table, saved)
			}
		}
	}
}

// echoConn is a long-lived TCP connection to the pod server's echo service
// that can be closed with a reset.
type echoConn struct {
	conn *net.TCPConn
	r    *bufio.Reader
	pod  string
}

// dialIn connects from namespace ns to addr, reads the greeting and keeps the connection.
func (e *env) dialIn(ns, addr string) *echoConn {
	e.t.Helper()
	conn, err := dialFromNamespace(e.w.Path(ns), addr)
	if err != nil {
		e.t.Fatalf("connect to %s from %s: %v", addr, ns, err)
	}
	e.t.Cleanup(func() { conn.Close() })
	c := &echoConn{conn: conn, r: bufio.NewReader(conn)}
	if c.pod, err = c.readPod(); err != nil {
		e.t.Fatalf("greeting from %s: %v", addr, err)
	}
	return c
}

func (c *echoConn) readPod() (string, error) {
	if err := c.conn.SetDeadline(time.Now().Add(probeTimeout)); err != nil {
		return "", err
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	f := strings.Fields(line)
	if len(f) != 2 {
		return "", fmt.Errorf("unexpected line %q", line)
	}
	return f[0], nil
}

// ping sends a line and returns the pod that echoed it.
func (c *echoConn) ping() (string, error) {
	if err := c.conn.SetDeadline(time.Now().Add(probeTimeout)); err != nil {
		return "", err
	}
	if _, err := c.conn.Write([]byte("ping\n")); err != nil {
		return "", err
	}
	return c.readPod()
}

// reset closes the connection with a TCP RST.
func (c *echoConn) reset() {
	_ = c.conn.SetLinger(0)
	_ = c.conn.Close()
}

// dialFromNamespace creates the socket on a thread moved into the
// namespace at path; the thread is restored (or, failing that, discarded).
func dialFromNamespace(path, addr string) (*net.TCPConn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := vnetns.Get()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer orig.Close()
		target, err := vnetns.GetFromPath(path)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer target.Close()
		if err := vnetns.Set(target); err != nil {
			done <- result{err: err}
			return
		}
		c, err := net.DialTimeout("tcp", addr, probeTimeout)
		if vnetns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		done <- result{c, err}
	}()
	r := <-done
	if r.err != nil {
		return nil, r.err
	}
	return r.c.(*net.TCPConn), nil
}
