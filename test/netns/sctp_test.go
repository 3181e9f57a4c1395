package netns_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kproxy/kproxy/test/netns"
	"github.com/kproxy/kproxy/test/probe"
)

// TestSCTP checks SCTP end to end where the kernel has it, and otherwise
// that both the pod server and the probe fail clearly instead of hanging.
func TestSCTP(t *testing.T) {
	w := netns.NewForTest(t, netns.Options{Pods: 1, RemotePods: 1})
	p1 := mustPod(t, w, "pod-1")
	ports := netns.ServerPorts{TCP: []int{8080}, SCTP: []int{9000}}
	target := netip.AddrPortFrom(p1.IPv4, 9000).String()
	if err := probe.SCTPSupported(w.Client); err != nil {
		if !errors.Is(err, probe.ErrUnsupported) {
			t.Fatal(err)
		}
		t.Logf("this kernel has no SCTP sockets; checking the clear failures: %v", err)
		checkSCTPUnsupported(t, w, p1, ports, target)
		return
	}
	if _, err := w.StartPodserver(podserverBin, p1, ports); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{target, netip.AddrPortFrom(p1.IPv6, 9000).String()} {
		got, err := probe.SCTP(w.Client, addr, probeTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if got.Pod != "pod-1" {
			t.Errorf("SCTP %s answered by %q, want pod-1", addr, got.Pod)
		}
	}
	c, err := probe.OpenLongLived(w.Client, target, probeTimeout, probe.OverSCTP())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if pod, err := c.Ping(); err != nil || pod != "pod-1" {
		t.Errorf("SCTP Ping = %q, %v", pod, err)
	}
}

func checkSCTPUnsupported(t *testing.T, w *netns.World, pod netns.Pod, ports netns.ServerPorts, target string) {
	proc, err := w.Start(pod.Netns, netns.PodserverArgs(podserverBin, pod, ports)...)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-proc.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("pod server with -sctp kept running on a kernel without SCTP; output:\n%s", proc.Output())
	}
	if proc.Err() == nil || !strings.Contains(proc.Output(), "does not support SCTP") {
		t.Errorf("pod server exit = %v, output %q; want a failure naming missing SCTP support", proc.Err(), proc.Output())
	}
	if _, err := probe.SCTP(w.Client, target, probeTimeout); !errors.Is(err, probe.ErrUnsupported) {
		t.Errorf("probe.SCTP err = %v, want ErrUnsupported", err)
	}
}
