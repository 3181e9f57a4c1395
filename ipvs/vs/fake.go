package vs

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"syscall"
	"time"
)

// KernelSchedulers returns the schedulers a stock kernel ships as ip_vs_* modules.
func KernelSchedulers() []string {
	return []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"}
}

// DefaultKernelTimeouts are a new network namespace's IPVS timeouts
// (ipvsadm -L --timeout: 900 120 300).
func DefaultKernelTimeouts() Timeouts {
	return Timeouts{TCP: 900 * time.Second, TCPFin: 120 * time.Second, UDP: 300 * time.Second}
}

// FakeOptions configure a Fake.
type FakeOptions struct {
	// Schedulers the fake kernel knows; nil means KernelSchedulers().
	Schedulers []string
	// HZ is the fake kernel's CONFIG_HZ, which bounds timeouts (the kernel
	// rejects more than INT_MAX/HZ seconds); 0 means Debian's 250.
	HZ int
}

// Fake is an in-memory Handle that rejects what the kernel rejects, with the
// kernel's errnos: a duplicate virtual server or destination (EEXIST), an
// operation on a missing virtual server (ESRCH) or destination (ENOENT), an
// unknown scheduler (ENOENT), an unknown protocol, a negative weight, a
// destination of the other family, a port 0, or a negative timeout or one
// over INT_MAX/HZ seconds (EINVAL). It also rejects
// FlagPersistent with timeout 0, which the kernel accepts but which would
// make every persistence template expire at once: a kproxy bug either way.
// It counts calls per method for tests. Safe for concurrent use.
type Fake struct {
	mu         sync.Mutex
	schedulers map[string]bool
	services   map[ServiceKey]*fakeService
	timeouts   Timeouts
	maxTimeout time.Duration
	// Calls counts calls per Handle method name ("GetVirtualServer", ...).
	calls map[string]int
}

type fakeService struct {
	vs    VirtualServer
	dests map[DestKey]Destination
}

var _ Handle = (*Fake)(nil)

// NewFake returns an empty fake IPVS table.
func NewFake(opts FakeOptions) *Fake {
	s := opts.Schedulers
	if s == nil {
		s = KernelSchedulers()
	}
	hz := opts.HZ
	if hz <= 0 {
		hz = 250
	}
	f := &Fake{schedulers: map[string]bool{}, services: map[ServiceKey]*fakeService{}, calls: map[string]int{},
		timeouts: DefaultKernelTimeouts(), maxTimeout: time.Duration(math.MaxInt32/hz) * time.Second}
	for _, n := range s {
		f.schedulers[n] = true
	}
	return f
}

// Calls returns a copy of the per-method call counts.
func (f *Fake) Calls() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.calls)
}

// ResetCalls zeroes the call counts.
func (f *Fake) ResetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.calls)
}

// SetConnections sets a destination's connection counters, as traffic would.
func (f *Fake) SetConnections(k ServiceKey, d DestKey, active, inactive int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.services[k]
	if !ok {
		return fmt.Errorf("fake ipvs: %s: %w", k, syscall.ESRCH)
	}
	dst, ok := s.dests[d]
	if !ok {
		return fmt.Errorf("fake ipvs: %s %s: %w", k, d, syscall.ENOENT)
	}
	dst.ActiveConnections, dst.InactiveConnections = active, inactive
	s.dests[d] = dst
	return nil
}

func (f *Fake) count(method string) { f.calls[method]++ }

func (f *Fake) ListVirtualServers() ([]VirtualServer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("ListVirtualServers")
	out := make([]VirtualServer, 0, len(f.services))
	for _, s := range f.services {
		out = append(out, s.vs)
	}
	slices.SortFunc(out, func(a, b VirtualServer) int { return a.ServiceKey.Compare(b.ServiceKey) })
	return out, nil
}

func (f *Fake) GetVirtualServer(k ServiceKey) (VirtualServer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("GetVirtualServer")
	s, ok := f.services[k]
	if !ok {
		return VirtualServer{}, fmt.Errorf("fake ipvs: get %s: %w", k, syscall.ESRCH)
	}
	return s.vs, nil
}

func (f *Fake) checkService(vs VirtualServer) error {
	switch {
	case vs.Protocol != TCP && vs.Protocol != UDP && vs.Protocol != SCTP:
		return fmt.Errorf("fake ipvs: %s: unknown protocol: %w", vs.ServiceKey, syscall.EINVAL)
	case !vs.Addr.IsValid() || vs.Port == 0:
		return fmt.Errorf("fake ipvs: %s: no address or port: %w", vs.ServiceKey, syscall.EINVAL)
	case !f.schedulers[vs.Scheduler]:
		return fmt.Errorf("fake ipvs: %s: scheduler %q not found: %w", vs.ServiceKey, vs.Scheduler, syscall.ENOENT)
	case vs.Flags&FlagPersistent != 0 && vs.Timeout == 0:
		return fmt.Errorf("fake ipvs: %s: persistent with timeout 0: %w", vs.ServiceKey, syscall.EINVAL)
	}
	return nil
}

func (f *Fake) NewVirtualServer(vs VirtualServer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("NewVirtualServer")
	if err := f.checkService(vs); err != nil {
		return err
	}
	if _, ok := f.services[vs.ServiceKey]; ok {
		return fmt.Errorf("fake ipvs: create %s: %w", vs.ServiceKey, syscall.EEXIST)
	}
	f.services[vs.ServiceKey] = &fakeService{vs: vs, dests: map[DestKey]Destination{}}
	return nil
}

func (f *Fake) UpdateVirtualServer(vs VirtualServer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("UpdateVirtualServer")
	s, ok := f.services[vs.ServiceKey]
	if !ok {
		return fmt.Errorf("fake ipvs: update %s: %w", vs.ServiceKey, syscall.ESRCH)
	}
	if err := f.checkService(vs); err != nil {
		return err
	}
	s.vs = vs
	return nil
}

func (f *Fake) DelVirtualServer(k ServiceKey) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("DelVirtualServer")
	if _, ok := f.services[k]; !ok {
		return fmt.Errorf("fake ipvs: delete %s: %w", k, syscall.ESRCH)
	}
	delete(f.services, k)
	return nil
}

// ListDestinations of a missing virtual server is empty, as the kernel's dump.
func (f *Fake) ListDestinations(k ServiceKey) ([]Destination, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("ListDestinations")
	s, ok := f.services[k]
	if !ok {
		return nil, nil
	}
	out := slices.Collect(maps.Values(s.dests))
	slices.SortFunc(out, func(a, b Destination) int { return a.DestKey.Compare(b.DestKey) })
	return out, nil
}

func (f *Fake) destTarget(k ServiceKey, d Destination) (*fakeService, error) {
	s, ok := f.services[k]
	if !ok {
		return nil, fmt.Errorf("fake ipvs: destination %s of %s: %w", d.DestKey, k, syscall.ESRCH)
	}
	switch {
	case d.Weight < 0:
		return nil, fmt.Errorf("fake ipvs: destination %s: negative weight: %w", d.DestKey, syscall.EINVAL)
	case !d.Addr.IsValid() || d.Addr.Is4() != k.Addr.Is4() || d.Port == 0:
		return nil, fmt.Errorf("fake ipvs: destination %s of %s: bad address: %w", d.DestKey, k, syscall.EINVAL)
	}
	return s, nil
}

func (f *Fake) NewDestination(k ServiceKey, d Destination) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("NewDestination")
	s, err := f.destTarget(k, d)
	if err != nil {
		return err
	}
	if _, ok := s.dests[d.DestKey]; ok {
		return fmt.Errorf("fake ipvs: add %s to %s: %w", d.DestKey, k, syscall.EEXIST)
	}
	d.ActiveConnections, d.InactiveConnections = 0, 0
	s.dests[d.DestKey] = d
	return nil
}

func (f *Fake) UpdateDestination(k ServiceKey, d Destination) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("UpdateDestination")
	s, err := f.destTarget(k, d)
	if err != nil {
		return err
	}
	old, ok := s.dests[d.DestKey]
	if !ok {
		return fmt.Errorf("fake ipvs: update %s of %s: %w", d.DestKey, k, syscall.ENOENT)
	}
	d.ActiveConnections, d.InactiveConnections = old.ActiveConnections, old.InactiveConnections
	s.dests[d.DestKey] = d
	return nil
}

func (f *Fake) DelDestination(k ServiceKey, d DestKey) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("DelDestination")
	s, ok := f.services[k]
	if !ok {
		return fmt.Errorf("fake ipvs: delete %s of %s: %w", d, k, syscall.ESRCH)
	}
	if _, ok := s.dests[d]; !ok {
		return fmt.Errorf("fake ipvs: delete %s of %s: %w", d, k, syscall.ENOENT)
	}
	delete(s.dests, d)
	return nil
}

func (f *Fake) GetTimeouts() (Timeouts, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("GetTimeouts")
	return f.timeouts, nil
}

// SetTimeouts keeps whole seconds, as the kernel does, so a non-zero value
// under a second leaves that timeout as it is. Like the kernel it checks
// every field before changing any.
func (f *Fake) SetTimeouts(t Timeouts) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("SetTimeouts")
	fields := []struct {
		set time.Duration
		cur *time.Duration
	}{{t.TCP, &f.timeouts.TCP}, {t.TCPFin, &f.timeouts.TCPFin}, {t.UDP, &f.timeouts.UDP}}
	for _, fl := range fields {
		if fl.set < 0 || fl.set.Truncate(time.Second) > f.maxTimeout {
			return fmt.Errorf("fake ipvs: set timeouts %s: %w", t, syscall.EINVAL)
		}
	}
	for _, fl := range fields {
		if s := fl.set.Truncate(time.Second); s > 0 {
			*fl.cur = s
		}
	}
	return nil
}
