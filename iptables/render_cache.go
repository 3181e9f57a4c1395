package iptables

import (
	"slices"
	"strings"

	"github.com/kproxy/kproxy/proxier"
)

// What a partial render reuses from earlier renders, so its Go time depends
// on the number of changed service ports, not on all of them. Profiled at 10k
// services × 10 endpoints, a one-service partial sync spent most of its time
// re-planning every unchanged service port to rewrite its lines in the
// top-level chains, sorting 10k names and summing 100k endpoints. All three
// are pure functions of a service port and its endpoints, which only change
// when the port is in snap.Changed (the contract per-service chains already
// rely on), so they are kept per port and recomputed on full renders.

// topChains is the number of top-level chains services write lines into
// (filter: 6, nat: 4; see newRenderRun).
const topChains = 10

// frontRules are one service port's lines in the top-level chains
// (Renderer.top), as its last render wrote them.
type frontRules struct {
	text  []byte
	ends  [topChains]int32 // end offset in text of each top chain's lines
	lines [topChains]int32
	valid bool
}

// frontMark is where each top-level chain stood before a service port's lines.
type frontMark [topChains]struct{ size, lines int }

func (r *renderRun) markFront() frontMark {
	var m frontMark
	for i := range r.top {
		m[i].size, m[i].lines = r.top[i].buf.Len(), r.top[i].w.lines
	}
	return m
}

// recordFront copies what the service port wrote since m into its cache.
func (r *renderRun) recordFront(ps *portState, m frontMark) {
	f := &ps.front
	f.text = f.text[:0]
	for i := range r.top {
		c := &r.top[i]
		f.text = append(f.text, c.buf.Bytes()[m[i].size:]...)
		f.ends[i] = int32(len(f.text))
		f.lines[i] = int32(c.w.lines - m[i].lines)
	}
	f.text = slices.Clip(f.text)
	f.valid = true
}

// replayFront appends the cached top-level lines of an unchanged port.
func (r *renderRun) replayFront(ps *portState) {
	f := &ps.front
	start := int32(0)
	for i := range r.top {
		c := &r.top[i]
		c.buf.Write(f.text[start:f.ends[i]])
		c.w.lines += int(f.lines[i])
		start = f.ends[i]
	}
}

// sortedNames returns the service ports in render order, re-sorting only on a
// full render or when a changed port appeared or disappeared.
func (s *serviceState) sortedNames(snap *proxier.Snapshot) []serviceName {
	if !snap.Full && s.order != nil && !s.membershipChanged(snap) {
		return s.order
	}
	for _, n := range s.order {
		n.port.ordered = false
	}
	s.order = sortedServiceNames(snap, s)
	for _, n := range s.order {
		n.port.ordered = true
	}
	return s.order
}

func (s *serviceState) membershipChanged(snap *proxier.Snapshot) bool {
	for n := range snap.Changed {
		_, in := snap.Service(n)
		ps := s.ports[n]
		if in != (ps != nil && ps.ordered) {
			return true
		}
	}
	return false
}

// sortedServiceNames orders service ports by svcPortName text, then protocol,
// the order upstream's golden tests sort rules in.
func sortedServiceNames(snap *proxier.Snapshot, state *serviceState) []serviceName {
	names := make([]serviceName, 0, snap.Len())
	for n := range snap.All() {
		ps := state.port(n)
		names = append(names, serviceName{name: n, str: ps.str, port: ps})
	}
	slices.SortFunc(names, func(a, b serviceName) int {
		if c := strings.Compare(a.str, b.str); c != 0 {
			return c
		}
		return strings.Compare(string(a.name.Protocol), string(b.name.Protocol))
	})
	return names
}

// totalEndpoints is upstream's large-cluster measure: all endpoints of all
// service ports. A partial render adjusts the last total by its changed ports.
func (s *serviceState) totalEndpoints(snap *proxier.Snapshot) int {
	if snap.Full || !s.totalKnown {
		s.reservePorts(snap.Len())
		total := 0
		for n := range snap.All() {
			c := endpointCount(snap, n)
			s.port(n).epCount = c
			total += c
		}
		s.total, s.totalKnown = total, true
		return total
	}
	for n := range snap.Changed {
		c := 0
		if _, ok := snap.Service(n); ok {
			c = endpointCount(snap, n)
		}
		ps := s.ports[n]
		if ps == nil {
			if c == 0 {
				continue
			}
			ps = s.port(n)
		}
		s.total += c - ps.epCount
		ps.epCount = c
	}
	return s.total
}

func endpointCount(snap *proxier.Snapshot, n proxier.ServicePortName) int {
	if eps := snap.Endpoints(n); eps != nil {
		return len(eps.All)
	}
	return 0
}
