package ipvs_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/ipvs"
	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/sysctl"
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
	for _, dir := range []string{"/run/netns/", "/var/run/netns/"} {
		if _, err := os.Stat(dir + ns.name); err == nil {
			ns.path = dir + ns.name
			break
		}
	}
	if ns.path == "" {
		t.Fatalf("namespace %s has no file under /run/netns", ns.name)
	}
	ns.run("ip", "-n", ns.name, "link", "add", "node0", "type", "dummy")
	ns.run("ip", "-n", ns.name, "addr", "add", nodeIP+"/24", "dev", "node0")
	ns.run("ip", "-n", ns.name, "link", "set", "node0", "up")
	return ns
}

// newGuestNS creates a namespace named prefix+random with lo up, removed
// when the test ends; it skips outside the qemu guest or without root.
func newGuestNS(t *testing.T, prefix, what, whyGuest string) *kernelNS {
	t.Helper()
	kerneltest.GuestOnly(t, "test/vm TestIPVSKernel ("+what+whyGuest+")")
	kerneltest.NeedRoot(t, what)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	ns := &kernelNS{t: t, name: prefix + hex.EncodeToString(b)}
	ns.run("ip", "netns", "add", ns.name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns.name).Run() })
	ns.run("ip", "-n", ns.name, "link", "set", "lo", "up")
	return ns
}

func (ns *kernelNS) run(args ...string) string {
	ns.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		ns.t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (ns *kernelNS) exec(args ...string) string {
	ns.t.Helper()
	return ns.run(append([]string{"ip", "netns", "exec", ns.name}, args...)...)
}

// ipvsadm returns `ipvsadm -Ln` with runs of blanks squeezed, one line each.
func (ns *kernelNS) ipvsadm() []string {
	var out []string
	for _, l := range strings.Split(ns.exec("ipvsadm", "-Ln"), "\n") {
		out = append(out, strings.Join(strings.Fields(l), " "))
	}
	return out
}

func (ns *kernelNS) world(mods ...func(*ipvs.Options)) (*world, *ipvs.KernelHandle) {
	ns.t.Helper()
	h, err := ipvs.NewKernelHandle(ns.path)
	if err != nil {
		ns.t.Fatal(err)
	}
	ns.t.Cleanup(h.Close)
	am, err := ipvs.NewNetlinkAddresses(ns.path, v1.IPv4Protocol)
	if err != nil {
		ns.t.Fatal(err)
	}
	ns.t.Cleanup(am.Close)
	w := &world{t: ns.t, clock: &fakeClock{}}
	w.opts = ipvs.Options{Handle: h, Addresses: am, NodePorts: netfilter.NodePortMatch{All: true}, Now: w.clock.Now}
	for _, m := range mods {
		m(&w.opts)
	}
	w.restart()
	return w, h
}

func kernelSnapshot() []entry {
	return []entry{
		e(svc("web", "10.96.0.1", withAffinity(600), withNodePort(30080), withEndpoints("10.244.1.1:8080", "10.244.1.2:8080"))),
		e(svc("dns", "10.96.0.10", withProtocol(v1.ProtocolUDP), withPort(53), withEndpoints("10.244.1.3:53"))),
		e(svc("sctp", "10.96.0.11", withProtocol(v1.ProtocolSCTP), withPort(9999), withEndpoints("10.244.1.4:9999"))),
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
	kw.sync(snapshot(kernelSnapshot()...))

	fw := newWorld(t)
	must(t, fw.h.NewVirtualServer(ipvs.VirtualServer{ServiceKey: vsKey(ipvs.TCP, "10.0.0.99", 80), Scheduler: "rr"}))
	fw.sync(snapshot(kernelSnapshot()...))
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
	addrOut := ns.run("ip", "-n", ns.name, "-4", "addr", "show", "dev", ipvs.DummyDevice)
	for _, want := range []string{"10.96.0.1/32", "10.96.0.10/32", "10.96.0.11/32"} {
		if !strings.Contains(addrOut, want) {
			t.Errorf("%s lacks %s:\n%s", ipvs.DummyDevice, want, addrOut)
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
	w.sync(snapshot(entries...))

	web := e(svc("web", "10.96.0.1", withAffinity(600), withNodePort(30080), withEndpoints("10.244.1.1:8080")))
	w.sync(partialPorts(snapshot(web, entries[2]), web.sp.Name, entries[1].sp.Name))
	got, err := kernelState(kh)
	if err != nil {
		t.Fatal(err)
	}
	wantStrings(t, "kernel after partial sync", got, []string{
		"SCTP/10.96.0.11:9999 rr -> 10.244.1.4:9999 w1",
		"TCP/10.96.0.1:80 rr flags=0x1 timeout=600 -> 10.244.1.1:8080 w1",
		"TCP/192.168.1.10:30080 rr flags=0x1 timeout=600 -> 10.244.1.1:8080 w1",
	})
	if out := ns.run("ip", "-n", ns.name, "-4", "addr", "show", "dev", ipvs.DummyDevice); strings.Contains(out, "10.96.0.10/") {
		t.Errorf("deleted service's address still bound:\n%s", out)
	}

	ns.exec("ipvsadm", "-e", "-t", "10.96.0.1:80", "-r", "10.244.1.1:8080", "-m", "-w", "0")
	w.restart()
	w.sync(partialPorts(snapshot(web, entries[2]), web.sp.Name))
	if adm := ns.ipvsadm(); !slices.Contains(adm, "-> 10.244.1.1:8080 Masq 1 0 0") {
		t.Errorf("weight-0 destination not restored after restart:\n%s", strings.Join(adm, "\n"))
	}
}

// TestKernelSchedulerFlagsRoundTrip: mh gets mh-port, read back without the
// kernel's hashed bit, so a second sync writes nothing.
func TestKernelSchedulerFlagsRoundTrip(t *testing.T) {
	ns := newKernelNS(t)
	w, _ := ns.world(func(o *ipvs.Options) { o.Scheduler = "mh" })
	snap := snapshot(e(svc("web", "10.96.0.1", withEndpoints("10.244.1.1:8080"))))
	w.sync(snap)
	if adm := ns.ipvsadm(); !slices.Contains(adm, "TCP 10.96.0.1:80 mh (mh-port)") {
		t.Errorf("ipvsadm -Ln lacks the mh virtual server with mh-port:\n%s", strings.Join(adm, "\n"))
	}
	w.sync(snap)
	if n := w.p.LastStats().Writes(); n != 0 {
		t.Errorf("second full sync wrote %d times (%+v), want 0", n, w.p.LastStats())
	}
}

// TestKernelRejectsWhatTheFakeRejects checks the Fake's errnos against the kernel.
func TestKernelRejectsWhatTheFakeRejects(t *testing.T) {
	ns := newKernelNS(t)
	h, err := ipvs.NewKernelHandle(ns.path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	k := vsKey(ipvs.TCP, "10.96.0.1", 80)
	missing := vsKey(ipvs.TCP, "10.96.0.9", 80)
	must(t, h.NewVirtualServer(ipvs.VirtualServer{ServiceKey: k, Scheduler: "rr"}), h.NewDestination(k, dest("10.244.1.1", 8080, 1)))
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"duplicate virtual server", h.NewVirtualServer(ipvs.VirtualServer{ServiceKey: k, Scheduler: "rr"}), syscall.EEXIST},
		{"unknown scheduler", h.NewVirtualServer(ipvs.VirtualServer{ServiceKey: missing, Scheduler: "nope"}), syscall.ENOENT},
		{"delete missing virtual server", h.DelVirtualServer(missing), syscall.ESRCH},
		{"update missing virtual server", h.UpdateVirtualServer(ipvs.VirtualServer{ServiceKey: missing, Scheduler: "rr"}), syscall.ESRCH},
		{"destination on a missing virtual server", h.NewDestination(missing, dest("10.244.1.1", 8080, 1)), syscall.ESRCH},
		{"duplicate destination", h.NewDestination(k, dest("10.244.1.1", 8080, 1)), syscall.EEXIST},
		{"update missing destination", h.UpdateDestination(k, dest("10.244.1.2", 8080, 1)), syscall.ENOENT},
		{"delete missing destination", h.DelDestination(k, dest("10.244.1.2", 8080, 1).DestKey), syscall.ENOENT},
	}
	_, getErr := h.GetVirtualServer(missing)
	tests = append(tests, struct {
		name string
		err  error
		want error
	}{"get missing virtual server", getErr, syscall.ESRCH})
	for _, tt := range tests {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: error = %v, want %v", tt.name, tt.err, tt.want)
		}
	}
	if ds, err := h.ListDestinations(missing); err != nil || len(ds) != 0 {
		t.Errorf("destinations of a missing virtual server = %v, %v; want none, no error (as the Fake)", ds, err)
	}
}

// inNS runs f on an OS thread moved into ns, so the /proc/sys files f opens
// are ns's (the kernel resolves /proc/sys/net by the opener's namespace).
func (ns *kernelNS) inNS(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(ns.path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- err // the thread stays locked and exits with this goroutine
			return
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("return to the test's namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// sysctl reads a sysctl in ns through another process (ip netns exec cat).
func (ns *kernelNS) sysctl(key string) string {
	ns.t.Helper()
	return strings.TrimSpace(ns.exec("cat", "/proc/sys/"+key))
}

// squeeze returns out's lines with runs of blanks squeezed.
func squeeze(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	return lines
}

// TestKernelStartupSettingsInNamespace applies IPVS mode's start-up
// settings in a test namespace, as kproxy does in its own: the scheduler
// probe leaves nothing, strictARP raises arp_announce but keeps a stricter
// arp_ignore, the timeouts show in ipvsadm -L --timeout, and the guest's
// own namespace keeps its sysctls and timeouts.
func TestKernelStartupSettingsInNamespace(t *testing.T) {
	ns := newKernelNS(t)
	ns.exec("sysctl", "-w", "net.ipv4.conf.all.arp_ignore=2")
	rootARP := [2]string{readProcSys(t, ipvs.SysctlARPIgnore), readProcSys(t, ipvs.SysctlARPAnnounce)}
	rootTimeouts := strings.TrimSpace(ns.run("ipvsadm", "-L", "--timeout"))
	h, err := ipvs.NewKernelHandle(ns.path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	probe, err := ipvs.NewIsolatedKernelHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	want := ipvs.Timeouts{TCP: 2 * time.Hour, TCPFin: 30 * time.Second, UDP: 45 * time.Second}
	release := readProcSys(t, "kernel/osrelease")
	// Kernels from 5.9 on fixed what conn_reuse_mode=0 worked around: left at its default, 1.
	var major, minor int
	if _, err := fmt.Sscanf(release, "%d.%d", &major, &minor); err != nil {
		t.Fatalf("kernel release %q: %v", release, err)
	}
	wantReuse := "0"
	if major > 5 || major == 5 && minor >= 9 {
		wantReuse = "1"
	}
	var res ipvs.StartupResult
	err = ns.inNS(func() (err error) {
		res, err = ipvs.ApplyStartupSettings(ipvs.StartupOptions{Handle: h, Probe: probe,
			Sysctls: sysctl.Dir{Root: sysctl.ProcSys}, Scheduler: "wrr", StrictARP: true, Timeouts: want,
			KernelRelease: release})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("changed sysctls: %+v", res.Sysctls)
	adm := squeeze(ns.exec("ipvsadm", "-L", "--timeout"))
	t.Logf("ipvsadm -L --timeout in the namespace: %q", adm)
	if !slices.Contains(adm, "Timeout (tcp tcpfin udp): 7200 30 45") {
		t.Errorf("ipvsadm -L --timeout in the namespace = %q, want 7200 30 45", adm)
	}
	if got, err := h.GetTimeouts(); err != nil || got != want || !res.TimeoutsSet {
		t.Errorf("GetTimeouts = %s, %v (set %v); want %s", got, err, res.TimeoutsSet, want)
	}
	for key, want := range map[string]string{ipvs.SysctlARPIgnore: "2", ipvs.SysctlARPAnnounce: "2",
		ipvs.SysctlVSConntrack: "1", ipvs.SysctlExpireNoDestConn: "1", ipvs.SysctlExpireQuiescentTemplate: "1",
		ipvs.SysctlIPForward: "1", ipvs.SysctlConnReuseMode: wantReuse} {
		if got := ns.sysctl(key); got != want {
			t.Errorf("%s in the namespace = %s, want %s", key, got, want)
		}
	}
	if got := [2]string{readProcSys(t, ipvs.SysctlARPIgnore), readProcSys(t, ipvs.SysctlARPAnnounce)}; got != rootARP {
		t.Errorf("guest namespace's arp_ignore/arp_announce changed from %v to %v", rootARP, got)
	}
	if got := strings.TrimSpace(ns.run("ipvsadm", "-L", "--timeout")); got != rootTimeouts {
		t.Errorf("guest namespace's timeouts changed from %q to %q", rootTimeouts, got)
	}
	if vss, err := h.ListVirtualServers(); err != nil || len(vss) != 0 {
		t.Errorf("namespace has virtual servers %v, %v after the probe; want none", vss, err)
	}
}

func readProcSys(t *testing.T, key string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/" + key)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestKernelProbeScheduler: every scheduler config accepts is found (the
// guest ships their modules); twos (Linux 6.2+, not shipped in the guest)
// and an unknown name fail naming the scheduler. The isolated probe handle
// lives in its own namespace: what it creates is seen nowhere else.
func TestKernelProbeScheduler(t *testing.T) {
	ns := newKernelNS(t)
	probe, err := ipvs.NewIsolatedKernelHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	for _, s := range []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "sh", "dh", "sed", "nq", "mh"} {
		if err := ipvs.ProbeScheduler(probe, s); err != nil {
			t.Errorf("ProbeScheduler(%s) = %v", s, err)
		}
	}
	for _, s := range []string{"twos", "nope"} {
		err := ipvs.ProbeScheduler(probe, s)
		t.Logf("ProbeScheduler(%s): %v", s, err)
		if !errors.Is(err, ipvs.ErrSchedulerUnavailable) || !errors.Is(err, syscall.ENOENT) || !strings.Contains(err.Error(), `"`+s+`"`) {
			t.Errorf("ProbeScheduler(%s) = %v; want ErrSchedulerUnavailable naming it", s, err)
		}
	}
	h, err := ipvs.NewKernelHandle(ns.path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := ipvs.ProbeScheduler(h, "rr"); err != nil {
		t.Errorf("probe in the test namespace: %v", err)
	}
	if vss, err := h.ListVirtualServers(); err != nil || len(vss) != 0 {
		t.Errorf("test namespace has %v, %v after a probe; want nothing left", vss, err)
	}
	leftover := ipvs.VirtualServer{ServiceKey: ipvs.ProbeVirtualServer(), Scheduler: "rr"}
	must(t, probe.NewVirtualServer(leftover))
	probeAddr := ipvs.ProbeVirtualServer().Addr.String()
	if out := ns.exec("ipvsadm", "-Ln"); strings.Contains(out, probeAddr) {
		t.Errorf("isolated handle's virtual server visible in the test namespace:\n%s", out)
	}
	if out := ns.run("ipvsadm", "-Ln"); strings.Contains(out, probeAddr) {
		t.Errorf("isolated handle's virtual server visible in the guest's namespace:\n%s", out)
	}
}

// TestKernelTimeoutsMatchTheFake applies the same timeouts to a namespace
// and to the Fake (Debian's HZ=250) and requires the same errors and values.
func TestKernelTimeoutsMatchTheFake(t *testing.T) {
	ns := newKernelNS(t)
	h, err := ipvs.NewKernelHandle(ns.path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	f := ipvs.NewFake(ipvs.FakeOptions{})
	if got, err := h.GetTimeouts(); err != nil || got != ipvs.DefaultKernelTimeouts() {
		t.Fatalf("new namespace's timeouts = %s, %v; want %s", got, err, ipvs.DefaultKernelTimeouts())
	}
	limit := time.Duration(math.MaxInt32/250) * time.Second
	for _, set := range []ipvs.Timeouts{
		{TCP: time.Hour, TCPFin: time.Minute, UDP: 10 * time.Second},
		{},
		{UDP: 1500 * time.Millisecond},
		{TCP: 500 * time.Millisecond},
		{TCPFin: limit},
		{TCPFin: limit + time.Second},
		{UDP: math.MaxUint32 * time.Second},
		{TCP: 5 * time.Second, UDP: -time.Second},
	} {
		kerr, ferr := h.SetTimeouts(set), f.SetTimeouts(set)
		if errors.Is(kerr, syscall.EINVAL) != errors.Is(ferr, syscall.EINVAL) || (kerr == nil) != (ferr == nil) {
			t.Errorf("SetTimeouts(%s): kernel %v, fake %v", set, kerr, ferr)
		}
		kt, err := h.GetTimeouts()
		if err != nil {
			t.Fatal(err)
		}
		if ft, _ := f.GetTimeouts(); kt != ft {
			t.Errorf("after SetTimeouts(%s): kernel %s, fake %s", set, kt, ft)
		}
	}
}
