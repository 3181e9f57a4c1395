package e2e

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
	"github.com/kproxy/kproxy/test/netns"
	"github.com/kproxy/kproxy/test/probe"
)

// TestTracerAgreesWithKernel traces packets through the rules the kernel
// holds (iptables-save, parsed) and checks the real connections do what the
// tracer predicts: the same set of backends, masquerade or not, and DROP
// (timeout) or REJECT (refused) where it says so. The tracer is what the unit
// tests trust; this keeps it honest.
func TestTracerAgreesWithKernel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	w := e.w
	web := service("web", "10.96.0.70")
	lb := service("lb", "10.96.0.71", withLoadBalancer("192.168.60.70", 30071, "192.168.50.2/32"))
	empty := service("empty", "10.96.0.72")
	e.start(web, slice(web, "a", endpoint(w, w.Pods[1]), endpoint(w, w.Pods[2]), endpoint(w, w.RemotePods[0])),
		lb, slice(lb, "a", endpoint(w, w.Pods[1])), empty, slice(empty, "a"))
	e.waitAnswer(w.Pods[0].Netns, "10.96.0.70:80")
	e.waitForRule("filter", "e2e/empty:p has no endpoints")

	tables := e.kernelTables()
	nodeIPs := []netip.Addr{w.Addrs.NodeV4, w.Addrs.NodeBridgeV4, w.Addrs.NodeLinkV4}
	trace := func(p ruleset.Packet) ruleset.TraceResult {
		t.Helper()
		res, err := ruleset.Trace(tables, ruleset.TraceOptions{NodeIPs: nodeIPs}, p)
		if err != nil {
			t.Fatalf("trace %+v: %v", p, err)
		}
		return res
	}

	t.Run("ClusterIP from a pod", func(t *testing.T) {
		res := trace(ruleset.Packet{Src: w.Pods[0].IPv4, Dst: netip.MustParseAddr("10.96.0.70"), Protocol: "tcp",
			SPort: 40000, DPort: 80, InIface: "cbr0"})
		want := destinationIPs(res)
		seen := map[string]bool{}
		for _, a := range e.answers(w.Pods[0].Netns, "10.96.0.70:80", 60) {
			seen[a.Pod] = true
			if res.Masqueraded() == (a.SeenSource == w.Pods[0].IPv4.String()) {
				t.Errorf("tracer says masquerade=%v, backend saw %s", res.Masqueraded(), a.SeenSource)
			}
		}
		if got := podIPs(w, seen); !slices.Equal(got, want) {
			t.Errorf("kernel sent connections to %v, tracer predicts %v\n%s", got, want, res)
		}
	})
	t.Run("LB from a source outside the ranges", func(t *testing.T) {
		res := trace(ruleset.Packet{Src: w.Addrs.ClientAltV4, Dst: netip.MustParseAddr("192.168.60.70"), Protocol: "tcp",
			SPort: 40000, DPort: 80, InIface: "eth1"})
		if !slices.Equal(res.Verdicts(), []string{ruleset.VerdictDrop}) {
			t.Fatalf("tracer verdicts %v, want only DROP\n%s", res.Verdicts(), res)
		}
		_, err := probe.TCP(w.Client, "192.168.60.70:80", time.Second, probe.Src(w.Addrs.ClientAltV4.String()))
		if !errors.Is(err, probe.ErrTimeout) {
			t.Errorf("tracer predicts DROP, the kernel gave %v", err)
		}
	})
	t.Run("service without endpoints", func(t *testing.T) {
		res := trace(ruleset.Packet{Src: w.Pods[0].IPv4, Dst: netip.MustParseAddr("10.96.0.72"), Protocol: "tcp",
			SPort: 40000, DPort: 80, InIface: "cbr0"})
		if !slices.Equal(res.Verdicts(), []string{ruleset.VerdictReject}) {
			t.Fatalf("tracer verdicts %v, want only REJECT\n%s", res.Verdicts(), res)
		}
		_, err := probe.TCP(w.Pods[0].Netns, "10.96.0.72:80", 2*time.Second)
		if !errors.Is(err, probe.ErrRefused) && !errors.Is(err, probe.ErrUnreachable) {
			t.Errorf("tracer predicts REJECT, the kernel gave %v", err)
		}
	})
}

// kernelTables parses the node's nat, filter and mangle tables as the kernel holds them.
func (e *env) kernelTables() map[string]*ruleset.Table {
	e.t.Helper()
	var all []byte
	for _, table := range []string{"filter", "nat", "mangle"} {
		all = append(all, e.save(table)...)
	}
	tables, err := ruleset.ParseTables(all, v1.IPv4Protocol)
	if err != nil {
		e.t.Fatalf("parse iptables-save: %v", err)
	}
	return tables
}

func destinationIPs(res ruleset.TraceResult) []string {
	var out []string
	for d := range res.Destinations() {
		out = append(out, d.Addr().String())
	}
	slices.Sort(out)
	return out
}

// podIPs maps answering pod names back to their IPv4 addresses, sorted.
func podIPs(w *netns.World, seen map[string]bool) []string {
	var out []string
	for _, p := range w.AllPods() {
		if seen[p.Name] {
			out = append(out, p.IPv4.String())
		}
	}
	slices.Sort(out)
	return out
}
