package proxier

import (
	"fmt"
	"iter"
	"net/netip"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// ServicePortName identifies one port of one Service. Its String form is
// upstream's svcPortName ("ns/name:port", or "ns/name" for an unnamed port),
// which appears in rule comments and chain-name hashes.
type ServicePortName struct {
	types.NamespacedName
	Port     string
	Protocol v1.Protocol
}

func (n ServicePortName) String() string {
	if n.Port == "" {
		return n.Namespace + "/" + n.Name
	}
	return n.Namespace + "/" + n.Name + ":" + n.Port
}

// Compare orders names for deterministic output.
func (n ServicePortName) Compare(o ServicePortName) int {
	switch {
	case n.Namespace != o.Namespace:
		return cmpString(n.Namespace, o.Namespace)
	case n.Name != o.Name:
		return cmpString(n.Name, o.Name)
	case n.Port != o.Port:
		return cmpString(n.Port, o.Port)
	default:
		return cmpString(string(n.Protocol), string(o.Protocol))
	}
}

func cmpString(a, b string) int {
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

// ServicePort is the backend-neutral model of one (Service, port) for one IP
// family. Every address in it belongs to that family.
type ServicePort struct {
	Name      ServicePortName
	ClusterIP netip.Addr
	Port      int32
	Protocol  v1.Protocol
	NodePort  int32

	ExternalIPs      []netip.Addr
	LoadBalancerVIPs []netip.Addr
	// LoadBalancerSourceRanges are the Service's source ranges of this
	// family, masked (upstream filters them by family).
	LoadBalancerSourceRanges []netip.Prefix
	// LoadBalancerSourceRangesInvalid is set when some loadBalancerSourceRanges
	// entry could not be parsed at all. Such an entry allows no source, and
	// the firewall applies even when no range of this family is left, so the
	// LB VIPs fail closed instead of opening to every source (upstream drops
	// the entry and, with none left, writes no firewall).
	LoadBalancerSourceRangesInvalid bool
	HealthCheckNodePort             int32

	ExternalPolicyLocal bool
	InternalPolicyLocal bool
	// AffinityTimeoutSeconds is the ClientIP session affinity timeout; 0 means no affinity.
	AffinityTimeoutSeconds int32
}

// ExternallyAccessible is true iff the port has a NodePort, an LB VIP or an external IP.
func (p *ServicePort) ExternallyAccessible() bool {
	return p.NodePort != 0 || len(p.LoadBalancerVIPs) > 0 || len(p.ExternalIPs) > 0
}

// UsesClusterEndpoints is true iff cluster-policy endpoints are needed: ITP is
// Cluster, or the port is externally accessible (for the ETP=Local short-circuit).
func (p *ServicePort) UsesClusterEndpoints() bool {
	return !p.InternalPolicyLocal || p.ExternallyAccessible()
}

// UsesLocalEndpoints is true iff ITP is Local, or ETP is Local on an externally accessible port.
func (p *ServicePort) UsesLocalEndpoints() bool {
	return p.InternalPolicyLocal || (p.ExternalPolicyLocal && p.ExternallyAccessible())
}

// FirewallRequired is true iff loadBalancerSourceRanges restrict the LB
// VIPs: some range of this family is allowed, or an entry could not be
// parsed (then only the valid ranges, possibly none, are allowed).
func (p *ServicePort) FirewallRequired() bool {
	return len(p.LoadBalancerSourceRanges) > 0 || p.LoadBalancerSourceRangesInvalid
}

// Equal reports whether two service ports would produce identical rules.
func (p *ServicePort) Equal(o *ServicePort) bool {
	if p == nil || o == nil {
		return p == o
	}
	return p.Name == o.Name && p.ClusterIP == o.ClusterIP && p.Port == o.Port &&
		p.Protocol == o.Protocol && p.NodePort == o.NodePort &&
		slices.Equal(p.ExternalIPs, o.ExternalIPs) &&
		slices.Equal(p.LoadBalancerVIPs, o.LoadBalancerVIPs) &&
		slices.Equal(p.LoadBalancerSourceRanges, o.LoadBalancerSourceRanges) &&
		p.LoadBalancerSourceRangesInvalid == o.LoadBalancerSourceRangesInvalid &&
		p.HealthCheckNodePort == o.HealthCheckNodePort &&
		p.ExternalPolicyLocal == o.ExternalPolicyLocal &&
		p.InternalPolicyLocal == o.InternalPolicyLocal &&
		p.AffinityTimeoutSeconds == o.AffinityTimeoutSeconds
}

// Endpoint is one backend of a service port, from an EndpointSlice (only
// addresses[0]). It is kept small (72 bytes): the tracker holds one per
// endpoint of the cluster (100k at 10k services × 10).
type Endpoint struct {
	IP          netip.Addr
	Port        int32
	Ready       bool
	Serving     bool
	Terminating bool
	// IsLocal is true iff the endpoint runs on this node.
	IsLocal  bool
	NodeName string
	Zone     string
	// Hints are the EndpointSlice's topology hints; nil when it has none.
	Hints *EndpointHints
}

// EndpointHints are an endpoint's topology hints: zone and node names.
type EndpointHints struct {
	Zones []string
	Nodes []string
}

// ZoneHints are the zones the endpoint is hinted for; nil means "no hints".
func (e *Endpoint) ZoneHints() []string {
	if e.Hints == nil {
		return nil
	}
	return e.Hints.Zones
}

// NodeHints are the nodes the endpoint is hinted for; nil means "no hints".
func (e *Endpoint) NodeHints() []string {
	if e.Hints == nil {
		return nil
	}
	return e.Hints.Nodes
}

// String is "ip:port" joined the net.JoinHostPort way ("[fd00::1]:80" for IPv6),
// the form used in comments and endpoint chain hashes.
func (e *Endpoint) String() string {
	var buf [64]byte
	return string(e.AppendString(buf[:0]))
}

// AppendString appends e.String() to b.
func (e *Endpoint) AppendString(b []byte) []byte {
	if e.IP.Is6() {
		b = append(b, '[')
		b = e.IP.AppendTo(b)
		b = append(b, ']')
	} else {
		b = e.IP.AppendTo(b)
	}
	b = append(b, ':')
	return strconv.AppendInt(b, int64(e.Port), 10)
}

// Usable is true iff the endpoint may receive traffic at all: ready, or serving while terminating.
func (e *Endpoint) Usable() bool {
	return e.Ready || (e.Serving && e.Terminating)
}

// Equal compares every field that influences rules or categorization.
func (e *Endpoint) Equal(o *Endpoint) bool {
	return e.IP == o.IP && e.Port == o.Port && e.Ready == o.Ready && e.Serving == o.Serving &&
		e.Terminating == o.Terminating && e.NodeName == o.NodeName && e.Zone == o.Zone &&
		e.IsLocal == o.IsLocal && slices.Equal(e.ZoneHints(), o.ZoneHints()) &&
		slices.Equal(e.NodeHints(), o.NodeHints())
}

// EndpointSet is the categorized endpoints of one service port, ready for a backend.
type EndpointSet struct {
	// All is every endpoint merged from the service's EndpointSlices, sorted by String().
	All []Endpoint
	// Cluster is what cluster-policy traffic may use (ready, topology-filtered;
	// else serving-terminating).
	Cluster []Endpoint
	// Local is what local-policy traffic may use (local ready; else local serving-terminating).
	Local []Endpoint
	// HasAny is true iff some endpoint anywhere is ready or serving-terminating.
	HasAny bool
}

// LocalReadyCount is the number of local ready endpoints, as the health-check node port reports.
func (s *EndpointSet) LocalReadyCount() int {
	n := 0
	for i := range s.All {
		if s.All[i].IsLocal && s.All[i].Ready {
			n++
		}
	}
	return n
}

// NodeInfo is what a backend needs to know about the node it runs on.
type NodeInfo struct {
	Name   string
	Labels map[string]string
	// IPs are the node's addresses of the proxier's family (from the Node's status, else the interfaces).
	IPs []netip.Addr
}

// Snapshot is the full desired state handed to a backend, plus what changed
// since the backend's last successful sync. Only a Tracker makes snapshots
// with service ports (a zero Snapshot is empty). The service ports and
// endpoint sets are a read-only view of the Tracker's model, which the next
// Tracker.Snapshot updates in place (rebuilding it cost ~20 ms per sync at
// 10k services): a snapshot is valid until then, and its accessors panic
// when it is used later (a counter compare, no allocation). What they
// return must not be modified. The other fields are the snapshot's own.
type Snapshot struct {
	Family v1.IPFamily
	Node   NodeInfo
	// Changed holds the service ports whose service or endpoints changed since
	// the last successful sync. Backends may rewrite only these, unless Full.
	Changed map[ServicePortName]struct{}
	// Full asks the backend to rewrite everything (startup, after a failure, periodic).
	Full bool
	// StaleEndpoints lists, per UDP service port, endpoints removed since the
	// last successful sync, for conntrack cleanup.
	StaleEndpoints map[ServicePortName][]Endpoint
	// TriggerTimes are the EndpointSlice controller's change times covered by
	// this snapshot (for network_programming_duration_seconds).
	TriggerTimes []time.Time

	model *sharedModel
	gen   uint64
}

// sharedModel is a Tracker's published model, shared by its snapshots.
// gen counts Tracker.Snapshot calls; a snapshot taken at another
// generation is stale. It is atomic so that the check itself never races;
// it cannot make reading the maps during a Tracker.Snapshot safe, only
// likely to be reported.
type sharedModel struct {
	services  map[ServicePortName]*ServicePort
	endpoints map[ServicePortName]*EndpointSet
	gen       atomic.Uint64
}

// view returns the snapshot's model, nil for a zero Snapshot, and panics
// when the Tracker has taken a newer snapshot since. It is kept small
// enough to inline (the panic message is formatted only when printed), so
// a per-element accessor in a renderer's 10k-service loop costs a load and
// a compare, not a call.
func (s *Snapshot) view() *sharedModel {
	m := s.model
	if m != nil {
		if g := m.gen.Load(); g != s.gen {
			panic(staleSnapshotError{family: s.Family, gen: s.gen, now: g})
		}
	}
	return m
}

// staleSnapshotError is the panic value of a use of a Snapshot after the Tracker's next Snapshot.
type staleSnapshotError struct {
	family   v1.IPFamily
	gen, now uint64
}

func (e staleSnapshotError) Error() string {
	return fmt.Sprintf("proxier: %s Snapshot of generation %d used after the Tracker's next Snapshot (generation %d)",
		e.family, e.gen, e.now)
}

// Len is the number of service ports.
func (s *Snapshot) Len() int {
	if m := s.view(); m != nil {
		return len(m.services)
	}
	return 0
}

// Service returns a service port by name.
func (s *Snapshot) Service(name ServicePortName) (*ServicePort, bool) {
	if m := s.view(); m != nil {
		sp, ok := m.services[name]
		return sp, ok
	}
	return nil, false
}

// Endpoints returns the categorized endpoints of a service port, nil when
// it has none (or there is no such service port).
func (s *Snapshot) Endpoints(name ServicePortName) *EndpointSet {
	if m := s.view(); m != nil {
		return m.endpoints[name]
	}
	return nil
}

// All yields every service port, in no particular order (SortedNames for a
// stable one). The snapshot must stay valid during the iteration.
func (s *Snapshot) All() iter.Seq2[ServicePortName, *ServicePort] {
	m := s.view()
	return func(yield func(ServicePortName, *ServicePort) bool) {
		if m == nil {
			return
		}
		s.view()
		for n, sp := range m.services {
			if !yield(n, sp) {
				return
			}
		}
	}
}

// SortedNames returns the snapshot's service port names in a stable order.
func (s *Snapshot) SortedNames() []ServicePortName {
	m := s.view()
	if m == nil {
		return nil
	}
	names := make([]ServicePortName, 0, len(m.services))
	for n := range m.services {
		names = append(names, n)
	}
	slices.SortFunc(names, ServicePortName.Compare)
	return names
}

// Equal compares two endpoint sets element by element.
func (s *EndpointSet) Equal(o *EndpointSet) bool {
	if s == nil || o == nil {
		return s == o
	}
	return s.HasAny == o.HasAny && equalEndpoints(s.All, o.All) &&
		equalEndpoints(s.Cluster, o.Cluster) && equalEndpoints(s.Local, o.Local)
}

func equalEndpoints(a, b []Endpoint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(&b[i]) {
			return false
		}
	}
	return true
}
