package conntrack

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/metrics"
)

// Handle is the part of *netlink.Handle the cleaner needs.
type Handle interface {
	// ConntrackTableList dumps the table.
	ConntrackTableList(table netlink.ConntrackTableType, family netlink.InetFamily) ([]*netlink.ConntrackFlow, error)
	// ConntrackDeleteFilters dumps the table once and deletes every flow
	// matching any filter, returning how many were deleted.
	ConntrackDeleteFilters(table netlink.ConntrackTableType, family netlink.InetFamily,
		filters ...netlink.CustomConntrackFilter) (uint, error)
}

// NetlinkTimeout bounds each send and receive on the Cleaner's own netlink socket.
const NetlinkTimeout = 30 * time.Second

// Options configures a Cleaner.
type Options struct {
	// Family is the IP family whose table is cleaned (IPv4 or IPv6).
	Family v1.IPFamily
	// Handle is the netlink access; nil opens a netfilter netlink handle in
	// the caller's network namespace (released by Close).
	Handle Handle
	// Metrics, when set, records kubeproxy_conntrack_reconciler_* metrics.
	Metrics *metrics.Metrics
	// Now is the clock for the duration metric; nil means time.Now.
	Now func() time.Time
}

// Cleaner deletes stale UDP conntrack entries of one IP family. Clean must
// not be called concurrently with itself.
type Cleaner struct {
	family  v1.IPFamily
	inet    netlink.InetFamily
	handle  Handle
	owned   *netlink.Handle
	metrics *metrics.Metrics
	now     func() time.Time
}

// NewCleaner returns a Cleaner for opts.Family.
func NewCleaner(opts Options) (*Cleaner, error) {
	c := &Cleaner{family: opts.Family, handle: opts.Handle, metrics: opts.Metrics, now: opts.Now}
	switch opts.Family {
	case v1.IPv4Protocol:
		c.inet = unix.AF_INET
	case v1.IPv6Protocol:
		c.inet = unix.AF_INET6
	default:
		return nil, fmt.Errorf("conntrack cleaner: unsupported IP family %q", opts.Family)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.handle == nil {
		h, err := netlink.NewHandle(unix.NETLINK_NETFILTER)
		if err != nil {
			return nil, fmt.Errorf("conntrack cleaner: open netfilter netlink handle: %w", err)
		}
		// A handle's own socket has no timeout: bound each send and receive
		// (a dump of a large table is many receives) so a stuck reply fails
		// the clean instead of hanging the sync loop behind it.
		if err := h.SetSocketTimeout(NetlinkTimeout); err != nil {
			h.Close()
			return nil, fmt.Errorf("conntrack cleaner: set netlink socket timeout: %w", err)
		}
		c.handle, c.owned = h, h
	}
	return c, nil
}

// Close releases the netlink handle the Cleaner opened itself, if any.
func (c *Cleaner) Close() {
	if c.owned != nil {
		c.owned.Close()
		c.owned = nil
	}
}

// Clean deletes the stale UDP entries for snap (see the package contract)
// with one table dump, and returns how many were deleted. On error, deleted
// still counts what was removed; an interrupted dump
// (errors.Is(err, netlink.ErrDumpInterrupted)) leaves a partial clean that the
// next call completes.
func (c *Cleaner) Clean(snap *proxier.Snapshot) (deleted int, err error) {
	start := c.now()
	defer func() { c.record(start, deleted) }()
	filter, err := c.filterFor(snap)
	if err != nil || filter.empty() {
		return 0, err
	}
	n, err := c.handle.ConntrackDeleteFilters(netlink.ConntrackTable, c.inet, filter)
	if err != nil {
		return int(n), fmt.Errorf("delete stale %s UDP conntrack entries: %w", c.family, err)
	}
	return int(n), nil
}

// Stale lists, without deleting, the entries Clean would delete now.
func (c *Cleaner) Stale(snap *proxier.Snapshot) ([]*netlink.ConntrackFlow, error) {
	filter, err := c.filterFor(snap)
	if err != nil || filter.empty() {
		return nil, err
	}
	flows, err := c.handle.ConntrackTableList(netlink.ConntrackTable, c.inet)
	if err != nil {
		return nil, fmt.Errorf("list %s conntrack entries: %w", c.family, err)
	}
	var stale []*netlink.ConntrackFlow
	for _, f := range flows {
		if filter.MatchConntrackFlow(f) {
			stale = append(stale, f)
		}
	}
	return stale, nil
}

func (c *Cleaner) filterFor(snap *proxier.Snapshot) (*staleFilter, error) {
	if snap.Family != "" && snap.Family != c.family {
		return nil, fmt.Errorf("conntrack cleaner for %s given a %s snapshot", c.family, snap.Family)
	}
	return newStaleFilter(snap, c.family == v1.IPv6Protocol), nil
}

func (c *Cleaner) record(start time.Time, deleted int) {
	if c.metrics == nil {
		return
	}
	family := string(c.family)
	c.metrics.ConntrackReconcileLatency.WithLabelValues(family).Observe(c.now().Sub(start).Seconds())
	c.metrics.ConntrackDeletedEntriesTotal.WithLabelValues(family).Add(float64(deleted))
}

// frontend is an address and port a service port is reachable on.
type frontend struct {
	addr netip.Addr
	port uint16
}

// backends is the set of serving endpoints (IP and port) of a service port.
type backends map[netip.AddrPort]struct{}

// staleFilter matches UDP flows addressed to a service frontend or NodePort
// whose reply source is not one of that port's serving endpoints.
type staleFilter struct {
	byFrontend map[frontend]backends
	byNodePort map[uint16]backends
}

func newStaleFilter(snap *proxier.Snapshot, ipv6 bool) *staleFilter {
	f := &staleFilter{byFrontend: map[frontend]backends{}, byNodePort: map[uint16]backends{}}
	for name, sp := range snap.All() {
		if sp.Protocol != v1.ProtocolUDP {
			continue
		}
		serving := servingBackends(snap.Endpoints(name))
		port := uint16(sp.Port)
		addrs := append([]netip.Addr{sp.ClusterIP}, sp.LoadBalancerVIPs...)
		addrs = append(addrs, sp.ExternalIPs...)
		for _, a := range addrs {
			a = a.Unmap()
			if a.IsValid() && a.Is6() == ipv6 {
				merge(f.byFrontend, frontend{a, port}, serving)
			}
		}
		if sp.NodePort != 0 {
			merge(f.byNodePort, uint16(sp.NodePort), serving)
		}
	}
	return f
}

// merge unions rather than overwrites, so a frontend shared by mistake
// between two service ports never deletes flows to either's endpoints.
func merge[K comparable](m map[K]backends, k K, add backends) {
	cur, ok := m[k]
	if !ok {
		m[k] = add
		return
	}
	union := make(backends, len(cur)+len(add))
	for b := range cur {
		union[b] = struct{}{}
	}
	for b := range add {
		union[b] = struct{}{}
	}
	m[k] = union
}

func servingBackends(set *proxier.EndpointSet) backends {
	out := backends{}
	if set == nil {
		return out
	}
	for _, ep := range set.All {
		if ep.Serving || ep.Ready {
			out[netip.AddrPortFrom(ep.IP.Unmap(), uint16(ep.Port))] = struct{}{}
		}
	}
	return out
}

func (f *staleFilter) empty() bool {
	return len(f.byFrontend) == 0 && len(f.byNodePort) == 0
}

// MatchConntrackFlow implements netlink.CustomConntrackFilter.
func (f *staleFilter) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	if flow.Forward.Protocol != unix.IPPROTO_UDP {
		return false
	}
	dst, ok := netip.AddrFromSlice(flow.Forward.DstIP)
	if !ok {
		return false
	}
	replyIP, ok := netip.AddrFromSlice(flow.Reverse.SrcIP)
	if !ok {
		return false
	}
	reply := netip.AddrPortFrom(replyIP.Unmap(), flow.Reverse.SrcPort)
	if serving, ok := f.byFrontend[frontend{dst.Unmap(), flow.Forward.DstPort}]; ok {
		_, fine := serving[reply]
		return !fine
	}
	if serving, ok := f.byNodePort[flow.Forward.DstPort]; ok {
		_, fine := serving[reply]
		return !fine
	}
	return false
}
