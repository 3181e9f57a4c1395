package startup_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kproxy/kproxy/ipvs/startup"
	"github.com/kproxy/kproxy/ipvs/vs"
	"github.com/kproxy/kproxy/proxier/sysctl"
)

// sysctlDir is a fake /proc/sys: one file per key, holding its value.
func sysctlDir(t *testing.T, values map[string]int) sysctl.Dir {
	t.Helper()
	root := t.TempDir()
	for k, v := range values {
		p := filepath.Join(root, k)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strconv.Itoa(v)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return sysctl.Dir{Root: root}
}

// hostSysctls is a host as IPVS mode finds it: ip_vs loaded, nothing set.
func hostSysctls(mods ...func(map[string]int)) map[string]int {
	m := map[string]int{
		startup.SysctlVSConntrack: 0, startup.SysctlConnReuseMode: 1, startup.SysctlExpireNoDestConn: 0,
		startup.SysctlExpireQuiescentTemplate: 0, startup.SysctlIPForward: 0,
		startup.SysctlARPIgnore: 0, startup.SysctlARPAnnounce: 0,
	}
	for _, mod := range mods {
		mod(m)
	}
	return m
}

func withSysctl(key string, v int) func(map[string]int) {
	return func(m map[string]int) { m[key] = v }
}

func withoutSysctl(key string) func(map[string]int) {
	return func(m map[string]int) { delete(m, key) }
}

func sysctlValue(t *testing.T, s sysctl.Interface, key string) int {
	t.Helper()
	v, err := s.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestEnsureStrictARPOnlyRaises(t *testing.T) {
	tests := []struct {
		name                     string
		ignore, announce         int
		wantIgnore, wantAnnounce int
		wantChanged              []string
	}{
		{"defaults are raised", 0, 0, 1, 2, []string{startup.SysctlARPIgnore, startup.SysctlARPAnnounce}},
		{"already strict", 1, 2, 1, 2, nil},
		{"arp_ignore 2 is stricter", 2, 1, 2, 2, []string{startup.SysctlARPAnnounce}},
		{"arp_ignore 8 never answers", 8, 2, 8, 2, nil},
		{"arp_ignore 3 still answers for global addresses", 3, 2, 1, 2, []string{startup.SysctlARPIgnore}},
		{"reserved arp_ignore 5 answers", 5, 0, 1, 2, []string{startup.SysctlARPIgnore, startup.SysctlARPAnnounce}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := sysctlDir(t, hostSysctls(withSysctl(startup.SysctlARPIgnore, tt.ignore), withSysctl(startup.SysctlARPAnnounce, tt.announce)))
			changes, err := startup.EnsureStrictARP(s)
			if err != nil {
				t.Fatal(err)
			}
			if got := sysctlValue(t, s, startup.SysctlARPIgnore); got != tt.wantIgnore {
				t.Errorf("arp_ignore = %d, want %d", got, tt.wantIgnore)
			}
			if got := sysctlValue(t, s, startup.SysctlARPAnnounce); got != tt.wantAnnounce {
				t.Errorf("arp_announce = %d, want %d", got, tt.wantAnnounce)
			}
			var keys []string
			for _, c := range changes {
				keys = append(keys, c.Key)
			}
			if !slices.Equal(keys, tt.wantChanged) {
				t.Errorf("changes = %+v, want keys %q", changes, tt.wantChanged)
			}
		})
	}
}

func startupOptions(f *vs.Fake, s sysctl.Interface, mods ...func(*startup.Options)) startup.Options {
	o := startup.Options{Handle: f, Sysctls: s, Scheduler: "rr"}
	for _, m := range mods {
		m(&o)
	}
	return o
}

func TestApply(t *testing.T) {
	timeouts := vs.Timeouts{TCP: 2 * time.Hour, TCPFin: 30 * time.Second, UDP: 45 * time.Second}
	tests := []struct {
		name         string
		mods         []func(*startup.Options)
		wantARP      [2]int
		wantTimeouts vs.Timeouts
		wantSet      bool
	}{
		{"defaults leave ARP and timeouts alone", nil, [2]int{0, 0}, vs.DefaultKernelTimeouts(), false},
		{"strictARP", []func(*startup.Options){func(o *startup.Options) { o.StrictARP = true }},
			[2]int{1, 2}, vs.DefaultKernelTimeouts(), false},
		{"all timeouts", []func(*startup.Options){func(o *startup.Options) { o.Timeouts = timeouts }},
			[2]int{0, 0}, timeouts, true},
		{"zero timeouts are left as they are", []func(*startup.Options){func(o *startup.Options) {
			o.Timeouts = vs.Timeouts{UDP: 10 * time.Second}
		}}, [2]int{0, 0}, vs.Timeouts{TCP: 900 * time.Second, TCPFin: 120 * time.Second, UDP: 10 * time.Second}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := vs.NewFake(vs.FakeOptions{})
			s := sysctlDir(t, hostSysctls())
			res, err := startup.Apply(startupOptions(f, s, tt.mods...))
			if err != nil {
				t.Fatal(err)
			}
			for key, want := range map[string]int{startup.SysctlVSConntrack: 1, startup.SysctlConnReuseMode: 0,
				startup.SysctlExpireNoDestConn: 1, startup.SysctlExpireQuiescentTemplate: 1, startup.SysctlIPForward: 1,
				startup.SysctlARPIgnore: tt.wantARP[0], startup.SysctlARPAnnounce: tt.wantARP[1]} {
				if got := sysctlValue(t, s, key); got != want {
					t.Errorf("%s = %d, want %d", key, got, want)
				}
			}
			got, _ := f.GetTimeouts()
			if got != tt.wantTimeouts || res.TimeoutsSet != tt.wantSet {
				t.Errorf("timeouts = %s (set %v), want %s (set %v)", got, res.TimeoutsSet, tt.wantTimeouts, tt.wantSet)
			}
			if n := f.Calls()["SetTimeouts"]; (n == 1) != tt.wantSet {
				t.Errorf("SetTimeouts called %d times, want it only when a timeout is non-zero", n)
			}
			if vss, _ := f.ListVirtualServers(); len(vss) != 0 {
				t.Errorf("scheduler probe left virtual servers: %v", vss)
			}
		})
	}
}

func TestApplyReportsChangesOnce(t *testing.T) {
	f := vs.NewFake(vs.FakeOptions{})
	s := sysctlDir(t, hostSysctls(withSysctl(startup.SysctlIPForward, 1)))
	o := startupOptions(f, s, func(o *startup.Options) { o.StrictARP = true })
	first, err := startup.Apply(o)
	if err != nil {
		t.Fatal(err)
	}
	// 4 vs/* sysctls and the 2 ARP ones; ip_forward was already 1.
	if len(first.Sysctls) != 6 || slices.ContainsFunc(first.Sysctls, func(c startup.SysctlChange) bool { return c.Key == startup.SysctlIPForward }) {
		t.Errorf("first start changed %+v, want the 6 sysctls that differed", first.Sysctls)
	}
	second, err := startup.Apply(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(second.Sysctls) != 0 {
		t.Errorf("second start changed %+v, want nothing", second.Sysctls)
	}
}

func TestApplyErrors(t *testing.T) {
	tests := []struct {
		name      string
		fake      vs.FakeOptions
		sysctls   map[string]int
		mods      []func(*startup.Options)
		want      []string
		wantErr   error
		untouched bool // no sysctl may change
	}{
		{"scheduler missing from the kernel", vs.FakeOptions{Schedulers: []string{"rr"}}, hostSysctls(),
			[]func(*startup.Options){func(o *startup.Options) { o.Scheduler = "sh"; o.StrictARP = true }},
			[]string{`"sh"`, "ip_vs_sh"}, startup.ErrSchedulerUnavailable, true},
		{"ip_vs not loaded", vs.FakeOptions{}, hostSysctls(withoutSysctl(startup.SysctlVSConntrack)), nil,
			[]string{startup.SysctlVSConntrack, "ip_vs module"}, os.ErrNotExist, false},
		{"negative timeout", vs.FakeOptions{}, hostSysctls(),
			[]func(*startup.Options){func(o *startup.Options) { o.Timeouts.TCPFin = -time.Second }},
			[]string{"ipvs timeouts", "tcpfin=-1s"}, syscall.EINVAL, false},
		{"timeout over INT_MAX/HZ seconds", vs.FakeOptions{HZ: 1000}, hostSysctls(),
			[]func(*startup.Options){func(o *startup.Options) { o.Timeouts.TCP = 30 * 24 * time.Hour }},
			[]string{"ipvs timeouts"}, syscall.EINVAL, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := vs.NewFake(tt.fake)
			s := sysctlDir(t, tt.sysctls)
			res, err := startup.Apply(startupOptions(f, s, tt.mods...))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if tt.untouched && (len(res.Sysctls) != 0 || sysctlValue(t, s, startup.SysctlARPIgnore) != 0) {
				t.Errorf("sysctls changed before the scheduler check failed: %+v", res.Sysctls)
			}
			if got, _ := f.GetTimeouts(); got != vs.DefaultKernelTimeouts() {
				t.Errorf("timeouts changed to %s by a failed start", got)
			}
		})
	}
}

func TestProbeSchedulerUsesProbeHandleAndLeavesNothing(t *testing.T) {
	main := vs.NewFake(vs.FakeOptions{})
	probe := vs.NewFake(vs.FakeOptions{Schedulers: []string{"rr", "mh"}})
	s := sysctlDir(t, hostSysctls())
	o := startupOptions(main, s, func(o *startup.Options) { o.Probe, o.Scheduler = probe, "mh" })
	if _, err := startup.Apply(o); err != nil {
		t.Fatal(err)
	}
	if c := main.Calls(); c["NewVirtualServer"] != 0 {
		t.Errorf("probe went through the main handle: %v", c)
	}
	if c := probe.Calls(); c["NewVirtualServer"] != 1 || c["DelVirtualServer"] != 1 {
		t.Errorf("probe handle calls = %v, want one create and one delete", c)
	}
	if vss, _ := probe.ListVirtualServers(); len(vss) != 0 {
		t.Errorf("probe left %v", vss)
	}
}

func TestProbeSchedulerNeverTouchesAnExistingProbeAddress(t *testing.T) {
	f := vs.NewFake(vs.FakeOptions{})
	theirs := vs.VirtualServer{ServiceKey: startup.ProbeVirtualServer(), Scheduler: "wrr"}
	if err := f.NewVirtualServer(theirs); err != nil {
		t.Fatal(err)
	}
	err := startup.ProbeScheduler(f, "rr")
	if !errors.Is(err, syscall.EEXIST) {
		t.Errorf("probe over an existing virtual server = %v, want EEXIST", err)
	}
	if got, err := f.GetVirtualServer(theirs.ServiceKey); err != nil || got != theirs {
		t.Errorf("existing virtual server = %+v, %v; want it untouched", got, err)
	}
}

// TestConnReuseModeDependsOnTheKernel follows upstream: conn_reuse_mode is
// set to 0 only from 4.1 (where it appeared) to before 5.9 (which fixed the
// delay it works around); an unreadable release is treated as affected.
func TestConnReuseModeDependsOnTheKernel(t *testing.T) {
	for _, tt := range []struct {
		release string
		want    int
	}{
		{"6.1.0-57-amd64", 1}, {"5.9.0", 1}, {"5.8.18-1", 0}, {"4.19.0-26-amd64", 0}, {"4.1.0", 0},
		{"4.0.9", 1}, {"3.10.0-1160.el7.x86_64", 1}, {"", 0}, {"weird", 0},
	} {
		s := sysctlDir(t, hostSysctls())
		o := startupOptions(vs.NewFake(vs.FakeOptions{}), s, func(o *startup.Options) { o.KernelRelease = tt.release })
		if _, err := startup.Apply(o); err != nil {
			t.Fatal(err)
		}
		if got := sysctlValue(t, s, startup.SysctlConnReuseMode); got != tt.want {
			t.Errorf("kernel %q: conn_reuse_mode = %d, want %d", tt.release, got, tt.want)
		}
	}
}
