package ipvs_test

import (
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/ipvs"
	"github.com/kproxy/kproxy/ipvs/addresses"
	"github.com/kproxy/kproxy/ipvs/vs"
	"github.com/kproxy/kproxy/proxier/netfilter"
	pt "github.com/kproxy/kproxy/proxier/proxiertest"
	"github.com/kproxy/kproxy/test/kerneltest"
)

// kernelNS is a network namespace created for one kernel test, with lo up
// (IPVS refuses real servers without it) and a dummy "node0" holding the
// node IP. Run inside the qemu guest only (test/vm/ipvs_test.go).
type kernelNS struct {
	t    *testing.T
	name string
	path string
}

func newKernelNS(t *testing.T) *kernelNS {
	t.Helper()
	ns := newGuestNS(t, "kpx-ipvs-", "IPVS kernel test", "; this host's kernel has no IPVS")
	ns.run("ip", "-n", ns.name, "link", "add", "node0", "type", "dummy")
	ns.run("ip", "-n", ns.name, "addr", "add", nodeIP+"/24", "dev", "node0")
	ns.run("ip", "-n", ns.name, "link", "set", "node0", "up")
	return ns
}

// newGuestNS creates a namespace named prefix+random with lo up, removed
// when the test ends; it skips outside the qemu guest.
func newGuestNS(t *testing.T, prefix, what, whyGuest string) *kernelNS {
	t.Helper()
	kerneltest.GuestOnly(t, "test/vm TestIPVSKernel ("+what+whyGuest+")")
	name := kerneltest.Netns(t, prefix)
	return &kernelNS{t: t, name: name, path: kerneltest.NetnsPath(t, name)}
}

func (ns *kernelNS) run(args ...string) string {
	ns.t.Helper()
	return kerneltest.Run(ns.t, args...)
}

func (ns *kernelNS) exec(args ...string) string {
	ns.t.Helper()
	return kerneltest.NetnsExec(ns.t, ns.name, args...)
}

// ipvsadm returns `ipvsadm -Ln` with runs of blanks squeezed, one line each.
func (ns *kernelNS) ipvsadm() []string {
	var out []string
	for _, l := range strings.Split(ns.exec("ipvsadm", "-Ln"), "\n") {
		out = append(out, strings.Join(strings.Fields(l), " "))
	}
	return out
}

func (ns *kernelNS) world(mods ...func(*ipvs.Options)) (*world, *vs.KernelHandle) {
	ns.t.Helper()
	h, err := vs.NewKernelHandle(ns.path)
	if err != nil {
		ns.t.Fatal(err)
	}
	ns.t.Cleanup(h.Close)
	am, err := addresses.NewNetlink(ns.path, v1.IPv4Protocol)
	if err != nil {
		ns.t.Fatal(err)
	}
	ns.t.Cleanup(am.Close)
	w := &world{t: ns.t, clock: &fakeClock{}, m: newModel(ns.t, v1.IPv4Protocol)}
	w.opts = ipvs.Options{Handle: h, Addresses: am, NodePorts: netfilter.NodePortMatch{All: true}, Now: w.clock.Now}
	for _, m := range mods {
		m(&w.opts)
	}
	w.restart()
	return w, h
}

func kernelSnapshot() []entry {
	return []entry{
		e(svc("web", "10.96.0.1", pt.Affinity(600), pt.NodePort(30080)), ep("10.244.1.1"), ep("10.244.1.2")),
		e(svcPort("dns", "10.96.0.10", v1.ProtocolUDP, 53, 53), ep("10.244.1.3")),
		e(svcPort("sctp", "10.96.0.11", v1.ProtocolSCTP, 9999, 9999), ep("10.244.1.4")),
	}
}

// TestKernelSyncMatchesFake programs the same snapshot into the kernel and
// into the Fake and requires identical tables, foreign virtual servers kept
// and kproxy's stale ones deleted, kube-ipvs0 addresses, and ipvsadm's view.
func TestKernelSyncMatchesFake(t *testing.T) {
	ns := newKernelNS(t)
	ns.exec("ipvsadm", "-A", "-t", "10.0.0.99:80", "-s", "rr")  // foreign
	ns.exec("ipvsadm", "-A", "-t", nodeIP+":30999", "-s", "rr") // stale NodePort
	kw, kh := ns.world()
	kw.sync(kw.next(kernelSnapshot()...))

	fw := newWorld(t)
	must(t, fw.h.NewVirtualServer(vs.VirtualServer{ServiceKey: vsKey(vs.TCP, "10.0.0.99", 80), Scheduler: "rr"}))
	fw.sync(fw.next(kernelSnapshot()...))
	got, err := kernelState(kh)
	if err != nil {
		t.Fatal(err)
	}
	wantStrings(t, "kernel vs fake", got, fw.state())
	if !slices.Contains(got, "TCP/10.0.0.99:80 rr") || slices.Contains(got, "TCP/192.168.1.10:30999 rr") {
		t.Errorf("kernel = %q: want the foreign virtual server kept and the stale NodePort deleted", got)
	}
	adm := ns.ipvsadm()
	for _, want := range []string{"TCP 10.96.0.1:80 rr persistent 600", "-> 10.244.1.1:8080 Masq 1 0 0",
		"TCP 192.168.1.10:30080 rr persistent 600", "UDP 10.96.0.10:53 rr", "SCTP 10.96.0.11:9999 rr"} {
		if !slices.Contains(adm, want) {
			t.Errorf("ipvsadm -Ln lacks %q:\n%s", want, strings.Join(adm, "\n"))
		}
	}
	addrOut := ns.run("ip", "-n", ns.name, "-4", "addr", "show", "dev", addresses.DummyDevice)
	for _, want := range []string{"10.96.0.1/32", "10.96.0.10/32", "10.96.0.11/32"} {
		if !strings.Contains(addrOut, want) {
			t.Errorf("%s lacks %s:\n%s", addresses.DummyDevice, want, addrOut)
		}
	}
}

// TestKernelPartialSyncAndRestart: a partial sync deletes an idle
// destination and unbinds a deleted service's address; a restart restores a
// destination someone left at weight 0.
func TestKernelPartialSyncAndRestart(t *testing.T) {
	ns := newKernelNS(t)
	w, kh := ns.world()
	entries := kernelSnapshot()
	w.sync(w.next(entries...))

	// web loses an endpoint, dns goes away.
	web := e(svc("web", "10.96.0.1", pt.Affinity(600), pt.NodePort(30080)), ep("10.244.1.1"))
	w.sync(w.next(web, entries[2]))
	got, err := kernelState(kh)
	if err != nil {
		t.Fatal(err)
	}
	wantStrings(t, "kernel after partial sync", got, []string{
		"SCTP/10.96.0.11:9999 rr -> 10.244.1.4:9999 w1",
		"TCP/10.96.0.1:80 rr flags=0x1 timeout=600 -> 10.244.1.1:8080 w1",
		"TCP/192.168.1.10:30080 rr flags=0x1 timeout=600 -> 10.244.1.1:8080 w1",
	})
	if out := ns.run("ip", "-n", ns.name, "-4", "addr", "show", "dev", addresses.DummyDevice); strings.Contains(out, "10.96.0.10/") {
		t.Errorf("deleted service's address still bound:\n%s", out)
	}

	ns.exec("ipvsadm", "-e", "-t", "10.96.0.1:80", "-r", "10.244.1.1:8080", "-m", "-w", "0")
	w.restart()
	w.sync(w.next(web, entries[2])) // partial, but the new Proxier has no memory: it plans it full
	if adm := ns.ipvsadm(); !slices.Contains(adm, "-> 10.244.1.1:8080 Masq 1 0 0") {
		t.Errorf("weight-0 destination not restored after restart:\n%s", strings.Join(adm, "\n"))
	}
}

// TestKernelSchedulerFlagsRoundTrip: mh gets mh-port, read back without the
// kernel's hashed bit, so a second sync writes nothing.
func TestKernelSchedulerFlagsRoundTrip(t *testing.T) {
	ns := newKernelNS(t)
	w, _ := ns.world(func(o *ipvs.Options) { o.Scheduler = "mh" })
	snap := w.next(e(svc("web", "10.96.0.1"), ep("10.244.1.1")))
	w.sync(snap)
	if adm := ns.ipvsadm(); !slices.Contains(adm, "TCP 10.96.0.1:80 mh (mh-port)") {
		t.Errorf("ipvsadm -Ln lacks the mh virtual server with mh-port:\n%s", strings.Join(adm, "\n"))
	}
	w.sync(snap)
	if n := w.p.LastStats().Writes(); n != 0 {
		t.Errorf("second full sync wrote %d times (%+v), want 0", n, w.p.LastStats())
	}
}
