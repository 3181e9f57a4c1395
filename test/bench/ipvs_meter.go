package bench

import (
	"context"
	"net/netip"
	"time"

	"github.com/kproxy/kproxy/ipvs"
)

// HandleCalls counts the calls a sync made on the IPVS Handle, per method.
type HandleCalls struct {
	List, Get, ListDests               int // reads
	NewServer, UpdateServer, DelServer int // virtual server writes
	NewDest, UpdateDest, DelDest       int // destination writes
}

// Reads are the calls that read the kernel table; List is a full rescan.
func (c HandleCalls) Reads() int { return c.List + c.Get + c.ListDests }

// Writes are the calls that change the kernel table.
func (c HandleCalls) Writes() int {
	return c.NewServer + c.UpdateServer + c.DelServer + c.NewDest + c.UpdateDest + c.DelDest
}

// Total is every call.
func (c HandleCalls) Total() int { return c.Reads() + c.Writes() }

// HandleMeter wraps an ipvs.Handle and records, per scenario, every table
// call and every virtual server a call named (ListVirtualServers names
// none: it is counted as a rescan). Methods it does not override (such as
// the connection timeouts) pass through uncounted.
type HandleMeter struct {
	ipvs.Handle

	calls HandleCalls
	named map[ipvs.ServiceKey]struct{}
}

var _ ipvs.Handle = (*HandleMeter)(nil)

func (m *HandleMeter) name(k ipvs.ServiceKey) {
	if m.named == nil {
		m.named = map[ipvs.ServiceKey]struct{}{}
	}
	m.named[k] = struct{}{}
}

func (m *HandleMeter) ListVirtualServers() ([]ipvs.VirtualServer, error) {
	m.calls.List++
	return m.Handle.ListVirtualServers()
}

func (m *HandleMeter) GetVirtualServer(k ipvs.ServiceKey) (ipvs.VirtualServer, error) {
	m.calls.Get++
	m.name(k)
	return m.Handle.GetVirtualServer(k)
}

func (m *HandleMeter) NewVirtualServer(vs ipvs.VirtualServer) error {
	m.calls.NewServer++
	m.name(vs.ServiceKey)
	return m.Handle.NewVirtualServer(vs)
}

func (m *HandleMeter) UpdateVirtualServer(vs ipvs.VirtualServer) error {
	m.calls.UpdateServer++
	m.name(vs.ServiceKey)
	return m.Handle.UpdateVirtualServer(vs)
}

func (m *HandleMeter) DelVirtualServer(k ipvs.ServiceKey) error {
	m.calls.DelServer++
	m.name(k)
	return m.Handle.DelVirtualServer(k)
}

func (m *HandleMeter) ListDestinations(k ipvs.ServiceKey) ([]ipvs.Destination, error) {
	m.calls.ListDests++
	m.name(k)
	return m.Handle.ListDestinations(k)
}

func (m *HandleMeter) NewDestination(k ipvs.ServiceKey, d ipvs.Destination) error {
	m.calls.NewDest++
	m.name(k)
	return m.Handle.NewDestination(k, d)
}

func (m *HandleMeter) UpdateDestination(k ipvs.ServiceKey, d ipvs.Destination) error {
	m.calls.UpdateDest++
	m.name(k)
	return m.Handle.UpdateDestination(k, d)
}

func (m *HandleMeter) DelDestination(k ipvs.ServiceKey, d ipvs.DestKey) error {
	m.calls.DelDest++
	m.name(k)
	return m.Handle.DelDestination(k, d)
}

// AddressCalls counts the calls a sync made on the kube-ipvs0 AddressManager.
type AddressCalls struct {
	// Reads are EnsureDevice, Bound and Local: the full-sync rescan.
	Reads        int
	Bind, Unbind int
}

// AddressMeter wraps an ipvs.AddressManager like HandleMeter wraps a Handle.
type AddressMeter struct {
	ipvs.AddressManager

	calls AddressCalls
	named map[netip.Addr]struct{}
}

var _ ipvs.AddressManager = (*AddressMeter)(nil)

func (m *AddressMeter) EnsureDevice() error {
	m.calls.Reads++
	return m.AddressManager.EnsureDevice()
}

func (m *AddressMeter) Bound() ([]netip.Addr, error) {
	m.calls.Reads++
	return m.AddressManager.Bound()
}

func (m *AddressMeter) Local() ([]netip.Addr, error) {
	m.calls.Reads++
	return m.AddressManager.Local()
}

func (m *AddressMeter) Bind(a netip.Addr) error {
	m.calls.Bind++
	m.name(a)
	return m.AddressManager.Bind(a)
}

func (m *AddressMeter) Unbind(a netip.Addr) error {
	m.calls.Unbind++
	m.name(a)
	return m.AddressManager.Unbind(a)
}

func (m *AddressMeter) name(a netip.Addr) {
	if m.named == nil {
		m.named = map[netip.Addr]struct{}{}
	}
	m.named[a] = struct{}{}
}

// IPSetMeter wraps an ipvs.IPSet and records restores, their batch sizes,
// lists and the time spent in both.
type IPSetMeter struct {
	ipvs.IPSet

	restores, ops, lists int
	time                 time.Duration
}

var _ ipvs.IPSet = (*IPSetMeter)(nil)

func (m *IPSetMeter) Restore(ctx context.Context, b *ipvs.SetBatch) error {
	start := time.Now()
	err := m.IPSet.Restore(ctx, b)
	m.time += time.Since(start)
	if b.Len() > 0 {
		m.restores++
		m.ops += b.Len()
	}
	return err
}

func (m *IPSetMeter) List(ctx context.Context) (map[string]*ipvs.SetContents, error) {
	start := time.Now()
	out, err := m.IPSet.List(ctx)
	m.time += time.Since(start)
	m.lists++
	return out, err
}

// IPVSCounts are what one IPVS-mode sync asked of the kernel besides
// iptables (which Sample's restore/save fields cover).
type IPVSCounts struct {
	Handle HandleCalls
	// Servers is how many distinct virtual servers Handle calls named.
	Servers int
	Address AddressCalls
	// Addresses is how many distinct kube-ipvs0 addresses were bound or unbound.
	Addresses int
	// Outside counts the virtual servers and addresses named that do not
	// belong to the scenario's changed service (partial syncs only; a
	// partial sync that touches only what changed has 0).
	Outside int
	// IPSetRestores and IPSetOps: `ipset restore` runs and their commands
	// (each batch re-states its sets' create lines); IPSetLists: full reads.
	IPSetRestores, IPSetOps, IPSetLists int
	IPSetTime                           time.Duration
	// Reconcile is the proxier's own account (ipvs.Proxier.LastStats).
	Reconcile ipvs.Stats
}

// ipvsMeters are the three IPVS-mode seams of one round, metered.
type ipvsMeters struct {
	handle *HandleMeter
	addrs  *AddressMeter
	sets   *IPSetMeter
}

func (m *ipvsMeters) reset() {
	m.handle.calls, m.handle.named = HandleCalls{}, nil
	m.addrs.calls, m.addrs.named = AddressCalls{}, nil
	m.sets.restores, m.sets.ops, m.sets.lists, m.sets.time = 0, 0, 0, 0
}

// counts reports the scenario so far; focus, if not nil, is what a partial
// sync is expected to name (virtual servers and addresses of the changed
// services).
func (m *ipvsMeters) counts(focusServers map[ipvs.ServiceKey]bool, focusAddrs map[netip.Addr]bool) *IPVSCounts {
	c := &IPVSCounts{Handle: m.handle.calls, Servers: len(m.handle.named), Address: m.addrs.calls,
		Addresses: len(m.addrs.named), IPSetRestores: m.sets.restores, IPSetOps: m.sets.ops,
		IPSetLists: m.sets.lists, IPSetTime: m.sets.time}
	if focusServers == nil {
		return c
	}
	for k := range m.handle.named {
		if !focusServers[k] {
			c.Outside++
		}
	}
	for a := range m.addrs.named {
		if !focusAddrs[a] {
			c.Outside++
		}
	}
	return c
}
