package vs

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"time"

	mobyipvs "github.com/moby/ipvs"
	"github.com/vishvananda/netns"
)

// Handle is kproxy's seam to the kernel's IPVS table. Errors keep the
// kernel's errno (syscall.ESRCH for a missing virtual server, ENOENT for a
// missing destination or scheduler, EEXIST for a duplicate) so callers can
// test them with errors.Is; IsNotFound covers both "missing" errnos.
type Handle interface {
	// ListVirtualServers lists every non-fwmark virtual server (both families).
	ListVirtualServers() ([]VirtualServer, error)
	// GetVirtualServer reads one virtual server.
	GetVirtualServer(k ServiceKey) (VirtualServer, error)
	NewVirtualServer(vs VirtualServer) error
	// UpdateVirtualServer sets scheduler, flags and timeout of an existing one.
	UpdateVirtualServer(vs VirtualServer) error
	DelVirtualServer(k ServiceKey) error
	ListDestinations(k ServiceKey) ([]Destination, error)
	NewDestination(k ServiceKey, d Destination) error
	UpdateDestination(k ServiceKey, d Destination) error
	DelDestination(k ServiceKey, d DestKey) error
	// GetTimeouts reads the namespace's IPVS connection timeouts.
	GetTimeouts() (Timeouts, error)
	// SetTimeouts sets them as `ipvsadm --set` does: a zero field leaves
	// that timeout as it is; a negative or too large one is EINVAL.
	SetTimeouts(t Timeouts) error
}

// IsNotFound reports a missing virtual server or destination.
func IsNotFound(err error) bool {
	return errors.Is(err, syscall.ESRCH) || errors.Is(err, syscall.ENOENT)
}

// KernelHandle is the real Handle over github.com/moby/ipvs (one generic
// netlink socket; not safe for concurrent use).
type KernelHandle struct {
	h *mobyipvs.Handle
}

var _ Handle = (*KernelHandle)(nil)

// NewKernelHandle opens IPVS in the network namespace at nsPath (e.g.
// /var/run/netns/NAME), or in the caller's namespace when nsPath is "".
func NewKernelHandle(nsPath string) (*KernelHandle, error) {
	h, err := mobyipvs.New(nsPath)
	if err != nil {
		return nil, fmt.Errorf("open IPVS netlink handle (namespace %q): %w", nsPath, err)
	}
	return &KernelHandle{h: h}, nil
}

// NewIsolatedKernelHandle opens IPVS in a new, private network namespace
// that only the handle's socket keeps alive, so whatever is created through
// it vanishes with Close or with the process, even after a crash, and the
// caller's namespace is never touched. ProbeScheduler uses it. Needs
// CAP_SYS_ADMIN (unshare of a network namespace).
func NewIsolatedKernelHandle() (*KernelHandle, error) {
	ns, err := newPrivateNetns()
	if err != nil {
		return nil, fmt.Errorf("create a private network namespace for IPVS probes: %w", err)
	}
	defer ns.Close()
	return NewKernelHandle(fmt.Sprintf("/proc/self/fd/%d", int(ns)))
}

// newPrivateNetns unshares a network namespace on a locked thread, moves
// the thread back and returns the new namespace's file descriptor.
func newPrivateNetns() (netns.NsHandle, error) {
	type result struct {
		ns  netns.NsHandle
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer orig.Close()
		ns, err := netns.New()
		if restoreErr := netns.Set(orig); restoreErr != nil {
			// The thread stays locked, so it exits with this goroutine
			// instead of running others in the wrong namespace.
			if err == nil {
				ns.Close()
			}
			ch <- result{err: fmt.Errorf("return to the original network namespace: %w", restoreErr)}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{ns: ns, err: err}
	}()
	r := <-ch
	return r.ns, r.err
}

// Close releases the netlink socket.
func (k *KernelHandle) Close() { k.h.Close() }

func (k *KernelHandle) ListVirtualServers() ([]VirtualServer, error) {
	svcs, err := k.h.GetServices()
	if err != nil {
		return nil, fmt.Errorf("list IPVS virtual servers: %w", err)
	}
	out := make([]VirtualServer, 0, len(svcs))
	for _, s := range svcs {
		if s.FWMark != 0 {
			continue
		}
		vs, err := fromMobyService(s)
		if err != nil {
			return nil, err
		}
		out = append(out, vs)
	}
	return out, nil
}

func (k *KernelHandle) GetVirtualServer(key ServiceKey) (VirtualServer, error) {
	s, err := k.h.GetService(toMobyService(VirtualServer{ServiceKey: key}))
	if err != nil {
		return VirtualServer{}, fmt.Errorf("get IPVS virtual server %s: %w", key, err)
	}
	return fromMobyService(s)
}

func (k *KernelHandle) NewVirtualServer(vs VirtualServer) error {
	if err := k.h.NewService(toMobyService(vs)); err != nil {
		return fmt.Errorf("create IPVS virtual server %s: %w", vs.ServiceKey, err)
	}
	return nil
}

func (k *KernelHandle) UpdateVirtualServer(vs VirtualServer) error {
	if err := k.h.UpdateService(toMobyService(vs)); err != nil {
		return fmt.Errorf("update IPVS virtual server %s: %w", vs.ServiceKey, err)
	}
	return nil
}

func (k *KernelHandle) DelVirtualServer(key ServiceKey) error {
	if err := k.h.DelService(toMobyService(VirtualServer{ServiceKey: key})); err != nil {
		return fmt.Errorf("delete IPVS virtual server %s: %w", key, err)
	}
	return nil
}

func (k *KernelHandle) ListDestinations(key ServiceKey) ([]Destination, error) {
	ds, err := k.h.GetDestinations(toMobyService(VirtualServer{ServiceKey: key}))
	if err != nil {
		return nil, fmt.Errorf("list destinations of %s: %w", key, err)
	}
	out := make([]Destination, 0, len(ds))
	for _, d := range ds {
		addr, ok := netip.AddrFromSlice(d.Address)
		if !ok {
			return nil, fmt.Errorf("destination of %s: bad address %v", key, d.Address)
		}
		out = append(out, Destination{
			DestKey: DestKey{Addr: addr.Unmap(), Port: d.Port}, Weight: d.Weight,
			Forwarding:        Forwarding(d.ConnectionFlags & mobyipvs.ConnectionFlagFwdMask),
			ActiveConnections: d.ActiveConnections, InactiveConnections: d.InactiveConnections,
		})
	}
	return out, nil
}

func (k *KernelHandle) NewDestination(key ServiceKey, d Destination) error {
	if err := k.h.NewDestination(toMobyService(VirtualServer{ServiceKey: key}), toMobyDest(d)); err != nil {
		return fmt.Errorf("add destination %s to %s: %w", d.DestKey, key, err)
	}
	return nil
}

func (k *KernelHandle) UpdateDestination(key ServiceKey, d Destination) error {
	if err := k.h.UpdateDestination(toMobyService(VirtualServer{ServiceKey: key}), toMobyDest(d)); err != nil {
		return fmt.Errorf("update destination %s of %s: %w", d.DestKey, key, err)
	}
	return nil
}

func (k *KernelHandle) DelDestination(key ServiceKey, d DestKey) error {
	if err := k.h.DelDestination(toMobyService(VirtualServer{ServiceKey: key}), toMobyDest(Destination{DestKey: d})); err != nil {
		return fmt.Errorf("delete destination %s of %s: %w", d, key, err)
	}
	return nil
}

func (k *KernelHandle) GetTimeouts() (Timeouts, error) {
	c, err := k.h.GetConfig()
	if err != nil {
		return Timeouts{}, fmt.Errorf("get IPVS timeouts: %w", err)
	}
	return Timeouts{TCP: c.TimeoutTCP, TCPFin: c.TimeoutTCPFin, UDP: c.TimeoutUDP}, nil
}

// SetTimeouts rejects negative and over-32-bit values itself: moby/ipvs
// converts seconds to uint32, which would wrap them into different values.
func (k *KernelHandle) SetTimeouts(t Timeouts) error {
	for _, d := range []time.Duration{t.TCP, t.TCPFin, t.UDP} {
		if d < 0 || d.Seconds() > math.MaxUint32 {
			return fmt.Errorf("set IPVS timeouts %s: %w", t, syscall.EINVAL)
		}
	}
	c := &mobyipvs.Config{TimeoutTCP: t.TCP, TimeoutTCPFin: t.TCPFin, TimeoutUDP: t.UDP}
	if err := k.h.SetConfig(c); err != nil {
		return fmt.Errorf("set IPVS timeouts %s: %w", t, err)
	}
	return nil
}

// toMobyService fills the netmask as upstream kube-proxy does (all ones for
// IPv4, 128 for IPv6): the kernel applies it to persistence templates.
func toMobyService(vs VirtualServer) *mobyipvs.Service {
	s := &mobyipvs.Service{
		Address: net.IP(vs.Addr.AsSlice()), Port: vs.Port, Protocol: uint16(vs.Protocol),
		SchedName: vs.Scheduler, Flags: uint32(vs.Flags), Timeout: vs.Timeout,
		AddressFamily: syscall.AF_INET, Netmask: 0xffffffff,
	}
	if vs.Addr.Is6() {
		s.AddressFamily, s.Netmask = syscall.AF_INET6, 128
	}
	return s
}

func fromMobyService(s *mobyipvs.Service) (VirtualServer, error) {
	addr, ok := netip.AddrFromSlice(s.Address)
	if !ok {
		return VirtualServer{}, fmt.Errorf("IPVS virtual server with bad address %v", s.Address)
	}
	return VirtualServer{
		ServiceKey: ServiceKey{Addr: addr.Unmap(), Port: s.Port, Protocol: Protocol(s.Protocol)},
		Scheduler:  s.SchedName, Flags: Flags(s.Flags) &^ flagHashed, Timeout: s.Timeout,
	}, nil
}

func toMobyDest(d Destination) *mobyipvs.Destination {
	md := &mobyipvs.Destination{
		Address: net.IP(d.Addr.AsSlice()), Port: d.Port, Weight: d.Weight,
		ConnectionFlags: uint32(d.Forwarding), AddressFamily: syscall.AF_INET,
	}
	if d.Addr.Is6() {
		md.AddressFamily = syscall.AF_INET6
	}
	return md
}
