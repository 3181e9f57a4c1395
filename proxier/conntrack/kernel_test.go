//go:build linux

package conntrack

import (
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"

	pt "github.com/kproxy/kproxy/proxier/proxiertest"
	"github.com/kproxy/kproxy/test/kerneltest"
)

// testNetns creates a network namespace removed when the test ends, even on failure.
func testNetns(t *testing.T, role string) string {
	t.Helper()
	return kerneltest.Netns(t, "kpx-ct-"+role+"-")
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// sendUDP sends one datagram from inside namespace ns.
func sendUDP(t *testing.T, ns, dst string) {
	t.Helper()
	var err error
	<-kerneltest.GoInNetns(t, ns, func() {
		var conn net.Conn
		if conn, err = net.Dial("udp4", dst); err != nil {
			return
		}
		defer conn.Close()
		_, err = conn.Write([]byte("x"))
	})
	if err != nil {
		t.Fatalf("send UDP to %s: %v", dst, err)
	}
}

func origDsts(flows []*netlink.ConntrackFlow) []string {
	var out []string
	for _, f := range flows {
		if f.Forward.Protocol == unix.IPPROTO_UDP {
			out = append(out, net.JoinHostPort(f.Forward.DstIP.String(), fmt.Sprint(f.Forward.DstPort)))
		}
	}
	slices.Sort(out)
	return out
}

// setupWorld builds a node namespace whose veth leads to a peer namespace,
// with nat OUTPUT DNAT rules standing in for service rules.
func setupWorld(t *testing.T) string {
	node, peer := testNetns(t, "node"), testNetns(t, "peer")
	cmds := [][]string{
		{"ip", "-n", node, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", peer},
		{"ip", "-n", node, "link", "set", "lo", "up"},
		{"ip", "-n", node, "link", "set", "veth0", "up"},
		{"ip", "-n", peer, "link", "set", "veth1", "up"},
		{"ip", "-n", node, "addr", "add", "10.244.0.1/24", "dev", "veth0"},
		{"ip", "-n", node, "route", "add", "10.96.0.0/12", "dev", "veth0"},
		// dns-a's old endpoint 10.244.0.5 (now gone), via cluster IP and NodePort.
		{"ip", "netns", "exec", node, "iptables", "-t", "nat", "-A", "OUTPUT", "-d", "10.96.0.10/32",
			"-p", "udp", "--dport", "53", "-j", "DNAT", "--to-destination", "10.244.0.5:5353"},
		{"ip", "netns", "exec", node, "iptables", "-t", "nat", "-A", "OUTPUT", "-d", "10.244.0.1/32",
			"-p", "udp", "--dport", "30053", "-j", "DNAT", "--to-destination", "10.244.0.5:5353"},
		// dns-b's endpoint 10.244.0.6 is still serving.
		{"ip", "netns", "exec", node, "iptables", "-t", "nat", "-A", "OUTPUT", "-d", "10.96.0.11/32",
			"-p", "udp", "--dport", "53", "-j", "DNAT", "--to-destination", "10.244.0.6:5353"},
		// dns-c (10.96.0.12) has no rule: its entry is never DNATed.
	}
	for _, c := range cmds {
		run(t, c...)
	}
	return node
}

func TestCleanKernel(t *testing.T) {
	kerneltest.NeedRoot(t, "conntrack kernel test (creates network namespaces and conntrack entries)")
	kerneltest.NeedTools(t, "conntrack kernel test", "ip", "iptables")
	node := setupWorld(t)
	ns, err := netns.GetFromName(node)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_NETFILTER)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	for _, dst := range []string{"10.96.0.10:53", "10.244.0.1:30053", "10.96.0.11:53", "10.96.0.12:53"} {
		sendUDP(t, node, dst)
	}
	all := []string{"10.244.0.1:30053", "10.96.0.10:53", "10.96.0.11:53", "10.96.0.12:53"}
	deadline := time.Now().Add(5 * time.Second)
	for {
		flows, err := h.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
		if err != nil {
			t.Fatal(err)
		}
		if got := origDsts(flows); slices.Equal(got, all) {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("conntrack entries %v, want %v", got, all)
		}
		time.Sleep(20 * time.Millisecond)
	}

	a, b := svc("dns-a", "10.96.0.10", 53, pt.NodePort(30053)), svc("dns-b", "10.96.0.11", 53)
	snap := pt.NewWorld(t, pt.WorldOptions{}).Apply(a, pt.SliceFor(a, pt.Endpoint("10.244.0.7")),
		b, pt.SliceFor(b, pt.Endpoint("10.244.0.6")), svc("dns-c", "10.96.0.12", 53)).Snapshot()
	c, err := NewCleaner(Options{Family: v1.IPv4Protocol, Handle: h})
	if err != nil {
		t.Fatal(err)
	}
	n, err := c.Clean(snap)
	if err != nil || n != 3 {
		t.Fatalf("Clean = %d, %v; want 3, nil", n, err)
	}
	flows, err := h.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := origDsts(flows), []string{"10.96.0.11:53"}; !slices.Equal(got, want) {
		t.Errorf("entries after Clean %v, want %v", got, want)
	}
}
