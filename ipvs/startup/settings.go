package startup

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/kproxy/kproxy/ipvs/vs"
	"github.com/kproxy/kproxy/proxier/sysctl"
)

// Sysctl keys (paths under /proc/sys) IPVS mode writes.
const (
	SysctlVSConntrack             = "net/ipv4/vs/conntrack"
	SysctlConnReuseMode           = "net/ipv4/vs/conn_reuse_mode"
	SysctlExpireNoDestConn        = "net/ipv4/vs/expire_nodest_conn"
	SysctlExpireQuiescentTemplate = "net/ipv4/vs/expire_quiescent_template"
	SysctlIPForward               = "net/ipv4/ip_forward"
	SysctlARPIgnore               = "net/ipv4/conf/all/arp_ignore"
	SysctlARPAnnounce             = "net/ipv4/conf/all/arp_announce"
)

const (
	strictARPIgnore   = 1
	strictARPAnnounce = 2
)

type sysctlValue struct {
	key   string
	value int
}

// requiredSysctls are set on every start: conntrack so the iptables
// masquerade rules see IPVS traffic, and expiry settings so removed
// destinations do not keep receiving reused connections. conn_reuse_mode is
// set to 0 only on kernels 4.1 (where it appeared) to 5.9 (which fixed the
// 1 s delay it worked around), as upstream does (kubernetes#93297); an
// unknown kernel release gets it too.
func requiredSysctls(kernelRelease string) []sysctlValue {
	out := []sysctlValue{{SysctlVSConntrack, 1}}
	if major, minor, ok := kernelMajorMinor(kernelRelease); !ok || versionIn(major, minor, 4, 1, 5, 9) {
		out = append(out, sysctlValue{SysctlConnReuseMode, 0})
	}
	return append(out, sysctlValue{SysctlExpireNoDestConn, 1},
		sysctlValue{SysctlExpireQuiescentTemplate, 1}, sysctlValue{SysctlIPForward, 1})
}

// versionIn reports whether major.minor is in [fromMajor.fromMinor, toMajor.toMinor).
func versionIn(major, minor, fromMajor, fromMinor, toMajor, toMinor int) bool {
	v, from, to := major*1000+minor, fromMajor*1000+fromMinor, toMajor*1000+toMinor
	return v >= from && v < to
}

// kernelMajorMinor parses "6.1.0-57-amd64" as 6, 1.
func kernelMajorMinor(release string) (major, minor int, ok bool) {
	f := strings.FieldsFunc(release, func(r rune) bool { return r == '.' || r == '-' })
	if len(f) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(f[0])
	minor, err2 := strconv.Atoi(f[1])
	return major, minor, err1 == nil && err2 == nil
}

// SysctlChange is one sysctl the start-up settings changed.
type SysctlChange struct {
	Key      string
	Old, New int
}

// Options are the settings IPVS mode applies once at start.
type Options struct {
	// Handle is the proxier's own IPVS handle; it receives the timeouts.
	Handle vs.Handle
	// Probe is where ProbeScheduler creates and deletes its virtual server:
	// best a vs.NewIsolatedKernelHandle, which leaves nothing behind even on a
	// crash. Nil probes through Handle, as upstream does.
	Probe vs.Handle
	// Sysctls is the proxier's network namespace's sysctl tree.
	Sysctls   sysctl.Interface
	Scheduler string
	// StrictARP raises arp_ignore to 1 and arp_announce to 2.
	StrictARP bool
	Timeouts  vs.Timeouts
	// KernelRelease is uname -r ("6.1.0-57-amd64"): conn_reuse_mode depends on it.
	KernelRelease string
}

// Result says what Apply changed, for the caller to log.
type Result struct {
	Sysctls     []SysctlChange
	TimeoutsSet bool
}

// Apply checks the scheduler first, so a kernel without it
// fails before anything is changed, then writes the sysctls IPVS mode
// needs, strictARP's, and the timeouts when any is non-zero.
func Apply(o Options) (Result, error) {
	var res Result
	probe := o.Probe
	if probe == nil {
		probe = o.Handle
	}
	if err := ProbeScheduler(probe, o.Scheduler); err != nil {
		return res, err
	}
	for _, s := range requiredSysctls(o.KernelRelease) {
		c, err := ensureSysctl(o.Sysctls, s.key, s.value, func(cur int) bool { return cur == s.value })
		if err != nil {
			return res, fmt.Errorf("%w (is the ip_vs module loaded?)", err)
		}
		res.Sysctls = appendChange(res.Sysctls, c)
	}
	if o.StrictARP {
		changes, err := EnsureStrictARP(o.Sysctls)
		res.Sysctls = append(res.Sysctls, changes...)
		if err != nil {
			return res, err
		}
	}
	if !o.Timeouts.IsZero() {
		if err := o.Handle.SetTimeouts(o.Timeouts); err != nil {
			return res, fmt.Errorf("ipvs timeouts (%s): %w", o.Timeouts, err)
		}
		res.TimeoutsSet = true
	}
	return res, nil
}

// EnsureStrictARP makes the namespace answer ARP only for addresses on the
// receiving interface (arp_ignore 1) and announce only the best local
// source (arp_announce 2), so nodes do not answer for kube-ipvs0's
// addresses. It never lowers a stricter setting: arp_ignore 2 (same subnet
// too) and 8 (never answer) are kept; 0, 3 (scope-based, which still
// answers for kube-ipvs0's global addresses) and the reserved 4-7 are not
// strict enough. The kernel uses the larger of conf/all and the interface's
// value, so conf/all is enough.
func EnsureStrictARP(s sysctl.Interface) ([]SysctlChange, error) {
	var out []SysctlChange
	c, err := ensureSysctl(s, SysctlARPIgnore, strictARPIgnore, func(cur int) bool { return slices.Contains([]int{1, 2, 8}, cur) })
	if err != nil {
		return out, fmt.Errorf("strictARP: %w", err)
	}
	out = appendChange(out, c)
	c, err = ensureSysctl(s, SysctlARPAnnounce, strictARPAnnounce, func(cur int) bool { return cur == strictARPAnnounce })
	if err != nil {
		return out, fmt.Errorf("strictARP: %w", err)
	}
	return appendChange(out, c), nil
}

// ensureSysctl sets key to value unless ok accepts its current value.
func ensureSysctl(s sysctl.Interface, key string, value int, ok func(int) bool) (*SysctlChange, error) {
	cur, err := s.Get(key)
	if err != nil {
		return nil, err
	}
	if ok(cur) {
		return nil, nil
	}
	if err := s.Set(key, value); err != nil {
		return nil, err
	}
	return &SysctlChange{Key: key, Old: cur, New: value}, nil
}

func appendChange(out []SysctlChange, c *SysctlChange) []SysctlChange {
	if c == nil {
		return out
	}
	return append(out, *c)
}

// ProbeVirtualServer is the virtual server ProbeScheduler creates and
// deletes: upstream's probe address (TEST-NET-2, never routed).
func ProbeVirtualServer() vs.ServiceKey {
	return vs.ServiceKey{Addr: netip.AddrFrom4([4]byte{198, 51, 100, 0}), Port: 20000, Protocol: vs.TCP}
}

// ErrSchedulerUnavailable is returned (wrapped) when the kernel cannot use
// the configured scheduler.
var ErrSchedulerUnavailable = errors.New("IPVS scheduler not available in this kernel")

// ProbeScheduler checks that the kernel can use scheduler by creating and
// deleting a probe virtual server with it, as upstream's
// CanUseIPVSProxier does. The kernel loads a modular scheduler on demand,
// so this also accepts one built as a module that is not loaded yet, and
// works in containers without /lib/modules. A probe address already in use
// is an error rather than someone else's virtual server changed or deleted.
func ProbeScheduler(h vs.Handle, scheduler string) error {
	key := ProbeVirtualServer()
	probe := vs.VirtualServer{ServiceKey: key, Scheduler: scheduler}
	err := h.NewVirtualServer(probe)
	switch {
	case errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("%w: %q (no ip_vs_%s kernel module?): probe: %w", ErrSchedulerUnavailable, scheduler, scheduler, err)
	case errors.Is(err, syscall.EEXIST):
		return fmt.Errorf("probe IPVS scheduler %q: probe virtual server %s already exists: %w", scheduler, key, err)
	case err != nil:
		return fmt.Errorf("probe IPVS scheduler %q: %w", scheduler, err)
	}
	if err := h.DelVirtualServer(key); err != nil {
		return fmt.Errorf("probe IPVS scheduler %q: remove probe virtual server: %w", scheduler, err)
	}
	return nil
}
