package ruleset

import (
	"net/netip"
	"slices"
)

// matchRule returns the probability that the rule matches the packet (0 or
// 1 unless a statistic match is involved) and whether an unknowable recent
// match may also make it match.
func (w *walker) matchRule(r *Rule, st *pathState) (p float64, maybe bool) {
	pkt := &st.pkt
	if !addrMatches(r.Source, pkt.Src) || !addrMatches(r.Destination, pkt.Dst) {
		return 0, false
	}
	if r.InIface != nil && !r.InIface.Matches(pkt.InIface) {
		return 0, false
	}
	if r.OutIface != nil && !r.OutIface.Matches(pkt.OutIface) {
		return 0, false
	}
	if r.Protocol != nil && (r.Protocol.Name == pkt.Protocol || r.Protocol.Name == "all") == r.Protocol.Negated {
		return 0, false
	}
	p = 1
	for _, m := range r.Matches {
		mp, mm := w.matchOne(m, st)
		if mp == 0 && !mm {
			return 0, false
		}
		p *= mp
		maybe = maybe || mm
	}
	if maybe && p == 0 {
		// Only the recent branch can match: it is then the only way in.
		return 0, true
	}
	return p, maybe
}

func addrMatches(m *AddrMatch, a netip.Addr) bool {
	if m == nil {
		return true
	}
	return m.Prefix.Contains(a) != m.Negated
}

func (w *walker) matchOne(m Match, st *pathState) (float64, bool) {
	switch m := m.(type) {
	case *CommentMatch:
		return 1, false
	case *PortMatch:
		ok := m.Proto == st.pkt.Protocol &&
			(m.SPort == nil || m.SPort.Contains(st.pkt.SPort)) &&
			(m.DPort == nil || m.DPort.Contains(st.pkt.DPort))
		return boolProb(ok), false
	case *AddrTypeMatch:
		ok := w.addrTypeMatches(m.Src, st.pkt.Src) && w.addrTypeMatches(m.Dst, st.pkt.Dst)
		return boolProb(ok), false
	case *MarkMatch:
		return boolProb(m.Matches(st.mark)), false
	case *ConntrackMatch:
		return boolProb(m.Matches(st.ctstates)), false
	case *StatisticMatch:
		return m.Effective(), false
	case *RecentMatch:
		return w.recentMatches(m)
	}
	return 0, false
}

func boolProb(ok bool) float64 {
	if ok {
		return 1
	}
	return 0
}

// recentMatches: --set and --remove always match (they record or forget the
// address); --rcheck and --update depend on history the tracer does not have.
func (w *walker) recentMatches(m *RecentMatch) (float64, bool) {
	switch m.Mode {
	case "set", "remove":
		return boolProb(!m.Negated), false
	}
	if w.opts.Recent == RecentMayMatch {
		return 0, true
	}
	return boolProb(m.Negated), false
}

func (w *walker) addrTypeMatches(spec *AddrTypeSpec, a netip.Addr) bool {
	if spec == nil {
		return true
	}
	t := w.addrType(a)
	return slices.Contains(spec.Types, t) != spec.Negated
}

// addrType classifies an address as the kernel's routing table would.
func (w *walker) addrType(a netip.Addr) string {
	switch {
	case w.isLocal(a):
		return "LOCAL"
	case a.IsMulticast():
		return "MULTICAST"
	case a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "BROADCAST"
	}
	return "UNICAST"
}

func (w *walker) isLocal(a netip.Addr) bool {
	return a.IsLoopback() || slices.Contains(w.opts.NodeIPs, a.Unmap())
}
