package addresses

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"syscall"
)

// Fake is an in-memory Manager; it rejects binding before
// the device exists, as the kernel does. Safe for concurrent use.
type Fake struct {
	mu     sync.Mutex
	device bool
	bound  []netip.Addr
	local  []netip.Addr
	calls  map[string]int
}

var _ Manager = (*Fake)(nil)

// NewFake returns a fake without the dummy device, whose other
// interfaces hold local.
func NewFake(local ...netip.Addr) *Fake {
	return &Fake{local: slices.Clone(local), calls: map[string]int{}}
}

// Calls returns a copy of the per-method call counts.
func (f *Fake) Calls() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.calls)
}

// SetLocal replaces the addresses of the other interfaces.
func (f *Fake) SetLocal(local ...netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.local = slices.Clone(local)
}

func (f *Fake) EnsureDevice() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["EnsureDevice"]++
	f.device = true
	return nil
}

func (f *Fake) Bound() ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Bound"]++
	out := slices.Clone(f.bound)
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}

func (f *Fake) Bind(addr netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Bind"]++
	if !f.device {
		return fmt.Errorf("fake addresses: bind %s: %s: %w", addr, DummyDevice, syscall.ENODEV)
	}
	if !slices.Contains(f.bound, addr) {
		f.bound = append(f.bound, addr)
	}
	return nil
}

func (f *Fake) Unbind(addr netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Unbind"]++
	f.bound = slices.DeleteFunc(f.bound, func(a netip.Addr) bool { return a == addr })
	return nil
}

func (f *Fake) Local() ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Local"]++
	return slices.Clone(f.local), nil
}

// RemoveDevice drops the fake dummy device and its addresses.
func (f *Fake) RemoveDevice() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["RemoveDevice"]++
	f.device, f.bound = false, nil
	return nil
}
