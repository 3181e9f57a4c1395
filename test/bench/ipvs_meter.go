package bench

import (
	"context"
	"net/netip"
	"time"

	"github.com/kproxy/kproxy/ipvs/addresses"
	"github.com/kproxy/kproxy/ipvs/ipset"
	"github.com/kproxy/kproxy/ipvs/vs"
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

// HandleMeter wraps a vs.Handle and records, per scenario, every table
// call and every virtual server a call named (ListVirtualServers names
// none: it is counted as a rescan). Methods it does not override (such as
// the connection timeouts) pass through uncounted.
type HandleMeter struct {
	vs.Handle

	calls HandleCalls
	named map[vs.ServiceKey]struct{}
}

var _ vs.Handle = (*HandleMeter)(nil)

func (m *HandleMeter) name(k vs.ServiceKey) {
	if m.named == nil {
		m.named = map[vs.ServiceKey]struct{}{}
	}
	m.named[k] = struct{}{}
}

func (m *HandleMeter) ListVirtualServers() ([]vs.VirtualServer, error) {
	m.calls.List++
	return m.Handle.ListVirtualServers()
}

func (m *HandleMeter) GetVirtualServer(k vs.ServiceKey) (vs.VirtualServer, error) {
	m.calls.Get++
	m.name(k)
	return m.Handle.GetVirtualServer(k)
}

func (m *HandleMeter) NewVirtualServer(v vs.VirtualServer) error {
	m.calls.NewServer++
	m.name(v.ServiceKey)
	return m.Handle.NewVirtualServer(v)
}

func (m *HandleMeter) UpdateVirtualServer(v vs.VirtualServer) error {
	m.calls.UpdateServer++
	m.name(v.ServiceKey)
	return m.Handle.UpdateVirtualServer(v)
}

func (m *HandleMeter) DelVirtualServer(k vs.ServiceKey) error {
	m.calls.DelServer++
	m.name(k)
	return m.Handle.DelVirtualServer(k)
}

func (m *HandleMeter) ListDestinations(k vs.ServiceKey) ([]vs.Destination, error) {
	m.calls.ListDests++
	m.name(k)
	return m.Handle.ListDestinations(k)
}

func (m *HandleMeter) NewDestination(k vs.ServiceKey, d vs.Destination) error {
	m.calls.NewDest++
	m.name(k)
	return m.Handle.NewDestination(k, d)
}

func (m *HandleMeter) UpdateDestination(k vs.ServiceKey, d vs.Destination) error {
	m.calls.UpdateDest++
	m.name(k)
	return m.Handle.UpdateDestination(k, d)
}

func (m *HandleMeter) DelDestination(k vs.ServiceKey, d vs.DestKey) error {
	m.calls.DelDest++
	m.name(k)
	return m.Handle.DelDestination(k, d)
}

// AddressCalls counts the calls a sync made on the kube-ipvs0 addresses.Manager.
type AddressCalls struct {
	// Reads are EnsureDevice, Bound and Local: the full-sync rescan.
	Reads        int
	Bind, Unbind int
}

// AddressMeter wraps an addresses.Manager like HandleMeter wraps a Handle.
type AddressMeter struct {
	addresses.Manager

	calls AddressCalls
	named map[netip.Addr]struct{}
}

var _ addresses.Manager = (*AddressMeter)(nil)

func (m *AddressMeter) EnsureDevice() error {
	m.calls.Reads++
	return m.Manager.EnsureDevice()
}

func (m *AddressMeter) Bound() ([]netip.Addr, error) {
	m.calls.Reads++
	return m.Manager.Bound()
}

func (m *AddressMeter) Local() ([]netip.Addr, error) {
	m.calls.Reads++
	return m.Manager.Local()
}

func (m *AddressMeter) Bind(a netip.Addr) error {
	m.calls.Bind++
	m.name(a)
	return m.Manager.Bind(a)
}

func (m *AddressMeter) Unbind(a netip.Addr) error {
	m.calls.Unbind++
	m.name(a)
	return m.Manager.Unbind(a)
}

func (m *AddressMeter) name(a netip.Addr) {
	if m.named == nil {
		m.named = map[netip.Addr]struct{}{}
	}
	m.named[a] = struct{}{}
}

// IPSetMeter wraps an ipset.Interface and records restores, their batch sizes,
// lists and the time spent in both.
type IPSetMeter struct {
	ipset.Interface

	restores, ops, lists int
	time                 time.Duration
}

var _ ipset.Interface = (*IPSetMeter)(nil)

func (m *IPSetMeter) Restore(ctx context.Context, b *ipset.Batch) error {
	start := time.Now()
	err := m.Interface.Restore(ctx, b)
	m.time += time.Since(start)
	if b.Len() > 0 {
		m.restores++
		m.ops += b.Len()
	}
	return err
}

func (m *IPSetMeter) List(ctx context.Context) (map[string]*ipset.Contents, error) {
	start := time.Now()
	out, err := m.Interface.List(ctx)
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
	Reconcile vs.Stats
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
func (m *ipvsMeters) counts(focusServers map[vs.ServiceKey]bool, focusAddrs map[netip.Addr]bool) *IPVSCounts {
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
