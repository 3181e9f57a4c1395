package iptables

import (
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier"
)

// Per-service state the Renderer keeps across renders. At 10k services ×
// 10 endpoints a partial sync used to spend most of its Go time hashing
// (SHA-256) the names of 100k endpoint chains of services that had not
// changed, and rebuilding a 110k-entry set of active chains. Chain names are
// pure functions of the service port name and the endpoint address, so they
// are computed once; the chains (and rule count) of a service port are
// recorded when it is rendered and reused while it is not in snap.Changed.

// portState is what the Renderer remembers about one service port.
type portState struct {
	str    string // svcPortName
	chains ServiceChains
	// eps caches KUBE-SEP names, sorted by address (a slice: at 100k
	// endpoints, per-port maps held three times the memory).
	eps []endpointName
	// owned are the per-service chains the port's last render declared, and
	// lines the rules in them; valid once rendered is set.
	owned    []string
	lines    int
	rendered bool
	// front caches the port's lines in the top-level chains; ordered says
	// it is in serviceState.order; epCount is its endpoints' count.
	front   frontRules
	ordered bool
	epCount int
}

type endpointName struct {
	key   netip.AddrPort
	chain string
}

func compareEndpointNames(a, b endpointName) int { return a.key.Compare(b.key) }

// serviceState maps each service port to its state and each active
// per-service chain to the port owning it (a pointer: 8 bytes per chain
// instead of a 64-byte ServicePortName, for 110k chains at 10k services).
type serviceState struct {
	ports map[proxier.ServicePortName]*portState
	owner map[string]*portState
	// order is the render order of the ports (see sortedNames); total the
	// endpoints of all ports (see totalEndpoints).
	order      []serviceName
	total      int
	totalKnown bool
}

// reservePorts and reserveOwners size the maps before the first render of a
// large snapshot, so they are not regrown (and their old copies garbage) a
// dozen times.
func (s *serviceState) reservePorts(services int) {
	if s.ports == nil {
		s.ports = make(map[proxier.ServicePortName]*portState, services)
	}
}

func (s *serviceState) reserveOwners(chains int) {
	if s.owner == nil {
		s.owner = make(map[string]*portState, chains)
	}
}

func (s *serviceState) port(n proxier.ServicePortName) *portState {
	s.reservePorts(0)
	ps := s.ports[n]
	if ps == nil {
		str := n.String()
		ps = &portState{str: str, chains: ServiceChainNames(str, n.Protocol)}
		s.ports[n] = ps
	}
	return ps
}

// endpointChain returns the KUBE-SEP chain of ep, whose "ip:port" is str,
// from the cache or computed, and records it in used.
func (ps *portState) endpointChain(ep *proxier.Endpoint, protocol v1.Protocol, str string, used *[]endpointName) string {
	e := endpointName{key: netip.AddrPortFrom(ep.IP, uint16(ep.Port))}
	if i, ok := slices.BinarySearchFunc(ps.eps, e, compareEndpointNames); ok {
		e.chain = ps.eps[i].chain
	} else {
		e.chain = EndpointChainName(ps.str, protocol, str)
	}
	*used = append(*used, e)
	return e.chain
}

// keepEndpoints makes the names a render used the port's cache, so a
// churning service does not grow it forever.
func (ps *portState) keepEndpoints(used []endpointName) {
	slices.SortFunc(used, compareEndpointNames)
	used = slices.CompactFunc(used, func(a, b endpointName) bool { return a.key == b.key })
	ps.eps = slices.Clone(used)
}

// setOwned records the chains a render of ps declared and returns, appended
// to removed, those its previous render declared and this one did not.
func (s *serviceState) setOwned(ps *portState, chains []string, removed []string) []string {
	for _, c := range ps.owned {
		if !containsName(chains, c) && s.owner[c] == ps {
			delete(s.owner, c)
			removed = append(removed, c)
		}
	}
	for _, c := range chains {
		s.owner[c] = ps
	}
	ps.owned = append(ps.owned[:0], chains...)
	return removed
}

// forgetRemoved drops the state of service ports absent from snap and
// returns their chains appended to removed.
func (s *serviceState) forgetRemoved(snap *proxier.Snapshot, removed []string) []string {
	if len(s.ports) == 0 {
		return removed
	}
	for n, ps := range s.ports {
		if _, ok := snap.Service(n); ok {
			continue
		}
		for _, c := range ps.owned {
			if s.owner[c] == ps {
				delete(s.owner, c)
				removed = append(removed, c)
			}
		}
		delete(s.ports, n)
	}
	return removed
}
