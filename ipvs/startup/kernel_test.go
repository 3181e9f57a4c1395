package startup_test

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/kproxy/kproxy/ipvs/startup"
	"github.com/kproxy/kproxy/ipvs/vs"
	"github.com/kproxy/kproxy/proxier/sysctl"
	"github.com/kproxy/kproxy/test/kerneltest"
)

// guestNS is a fresh network namespace of the qemu guest (this host's
// kernel has no IPVS; test/vm TestIPVSKernel runs these tests there).
type guestNS struct {
	t          *testing.T
	name, path string
}

func newGuestNS(t *testing.T) *guestNS {
	t.Helper()
	kerneltest.GuestOnly(t, "test/vm TestIPVSKernel (IPVS kernel test; this host's kernel has no IPVS)")
	name := kerneltest.Netns(t, "kpx-ipvs-")
	return &guestNS{t: t, name: name, path: kerneltest.NetnsPath(t, name)}
}

func (ns *guestNS) handle() *vs.KernelHandle {
	ns.t.Helper()
	h, err := vs.NewKernelHandle(ns.path)
	if err != nil {
		ns.t.Fatal(err)
	}
	ns.t.Cleanup(h.Close)
	return h
}

// inNS runs f on an OS thread moved into ns, so the /proc/sys files f opens
// are ns's (the kernel resolves /proc/sys/net by the opener's namespace).
func (ns *guestNS) inNS(f func() error) error {
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
func (ns *guestNS) sysctl(key string) string {
	ns.t.Helper()
	return strings.TrimSpace(kerneltest.NetnsExec(ns.t, ns.name, "cat", "/proc/sys/"+key))
}

// squeeze returns out's lines with runs of blanks squeezed.
func squeeze(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	return lines
}

func readProcSys(t *testing.T, key string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/" + key)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// wantConnReuseMode is conn_reuse_mode after Apply on this kernel: kernels
// from 5.9 on fixed what 0 worked around, so it stays at its default, 1.
func wantConnReuseMode(t *testing.T, release string) string {
	t.Helper()
	var major, minor int
	if _, err := fmt.Sscanf(release, "%d.%d", &major, &minor); err != nil {
		t.Fatalf("kernel release %q: %v", release, err)
	}
	if major > 5 || major == 5 && minor >= 9 {
		return "1"
	}
	return "0"
}

// TestKernelStartupSettingsInNamespace applies IPVS mode's start-up
// settings in a test namespace, as kproxy does in its own: the scheduler
// probe leaves nothing, strictARP raises arp_announce but keeps a stricter
// arp_ignore, the timeouts show in ipvsadm -L --timeout, and the guest's
// own namespace keeps its sysctls and timeouts.
func TestKernelStartupSettingsInNamespace(t *testing.T) {
	ns := newGuestNS(t)
	kerneltest.NetnsExec(ns.t, ns.name, "sysctl", "-w", "net.ipv4.conf.all.arp_ignore=2")
	rootARP := [2]string{readProcSys(t, startup.SysctlARPIgnore), readProcSys(t, startup.SysctlARPAnnounce)}
	rootTimeouts := strings.TrimSpace(kerneltest.Run(ns.t, "ipvsadm", "-L", "--timeout"))
	h := ns.handle()
	probe, err := vs.NewIsolatedKernelHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	want := vs.Timeouts{TCP: 2 * time.Hour, TCPFin: 30 * time.Second, UDP: 45 * time.Second}
	release := readProcSys(t, "kernel/osrelease")
	var res startup.Result
	err = ns.inNS(func() (err error) {
		res, err = startup.Apply(startup.Options{Handle: h, Probe: probe,
			Sysctls: sysctl.Dir{Root: sysctl.ProcSys}, Scheduler: "wrr", StrictARP: true, Timeouts: want,
			KernelRelease: release})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("changed sysctls: %+v", res.Sysctls)
	adm := squeeze(kerneltest.NetnsExec(ns.t, ns.name, "ipvsadm", "-L", "--timeout"))
	t.Logf("ipvsadm -L --timeout in the namespace: %q", adm)
	if !slices.Contains(adm, "Timeout (tcp tcpfin udp): 7200 30 45") {
		t.Errorf("ipvsadm -L --timeout in the namespace = %q, want 7200 30 45", adm)
	}
	if got, err := h.GetTimeouts(); err != nil || got != want || !res.TimeoutsSet {
		t.Errorf("GetTimeouts = %s, %v (set %v); want %s", got, err, res.TimeoutsSet, want)
	}
	for key, want := range map[string]string{startup.SysctlARPIgnore: "2", startup.SysctlARPAnnounce: "2",
		startup.SysctlVSConntrack: "1", startup.SysctlExpireNoDestConn: "1", startup.SysctlExpireQuiescentTemplate: "1",
		startup.SysctlIPForward: "1", startup.SysctlConnReuseMode: wantConnReuseMode(t, release)} {
		if got := ns.sysctl(key); got != want {
			t.Errorf("%s in the namespace = %s, want %s", key, got, want)
		}
	}
	if got := [2]string{readProcSys(t, startup.SysctlARPIgnore), readProcSys(t, startup.SysctlARPAnnounce)}; got != rootARP {
		t.Errorf("guest namespace's arp_ignore/arp_announce changed from %v to %v", rootARP, got)
	}
	if got := strings.TrimSpace(kerneltest.Run(ns.t, "ipvsadm", "-L", "--timeout")); got != rootTimeouts {
		t.Errorf("guest namespace's timeouts changed from %q to %q", rootTimeouts, got)
	}
	if vss, err := h.ListVirtualServers(); err != nil || len(vss) != 0 {
		t.Errorf("namespace has virtual servers %v, %v after the probe; want none", vss, err)
	}
}

// TestKernelProbeScheduler: every scheduler config accepts is found (the
// guest ships their modules); twos (Linux 6.2+, not shipped in the guest)
// and an unknown name fail naming the scheduler. The isolated probe handle
// lives in its own namespace: what it creates is seen nowhere else.
func TestKernelProbeScheduler(t *testing.T) {
	ns := newGuestNS(t)
	probe, err := vs.NewIsolatedKernelHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	for _, s := range []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "sh", "dh", "sed", "nq", "mh"} {
		if err := startup.ProbeScheduler(probe, s); err != nil {
			t.Errorf("ProbeScheduler(%s) = %v", s, err)
		}
	}
	for _, s := range []string{"twos", "nope"} {
		err := startup.ProbeScheduler(probe, s)
		t.Logf("ProbeScheduler(%s): %v", s, err)
		if !errors.Is(err, startup.ErrSchedulerUnavailable) || !errors.Is(err, syscall.ENOENT) || !strings.Contains(err.Error(), `"`+s+`"`) {
			t.Errorf("ProbeScheduler(%s) = %v; want ErrSchedulerUnavailable naming it", s, err)
		}
	}
	h := ns.handle()
	if err := startup.ProbeScheduler(h, "rr"); err != nil {
		t.Errorf("probe in the test namespace: %v", err)
	}
	if vss, err := h.ListVirtualServers(); err != nil || len(vss) != 0 {
		t.Errorf("test namespace has %v, %v after a probe; want nothing left", vss, err)
	}
	if err := probe.NewVirtualServer(vs.VirtualServer{ServiceKey: startup.ProbeVirtualServer(), Scheduler: "rr"}); err != nil {
		t.Fatal(err)
	}
	probeAddr := startup.ProbeVirtualServer().Addr.String()
	if out := kerneltest.NetnsExec(ns.t, ns.name, "ipvsadm", "-Ln"); strings.Contains(out, probeAddr) {
		t.Errorf("isolated handle's virtual server visible in the test namespace:\n%s", out)
	}
	if out := kerneltest.Run(ns.t, "ipvsadm", "-Ln"); strings.Contains(out, probeAddr) {
		t.Errorf("isolated handle's virtual server visible in the guest's namespace:\n%s", out)
	}
}
