package ruleset

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// RecentMode says how the tracer treats -m recent --rcheck / --update, whose
// outcome depends on earlier connections.
type RecentMode int

const (
	// RecentNoMatch: no earlier connection is remembered; rcheck never matches.
	RecentNoMatch RecentMode = iota
	// RecentMayMatch: each rcheck both matches and does not match; paths
	// through a match are marked Sticky and their probability is unknown.
	RecentMayMatch
)

// TraceOptions describes the node the packet meets.
type TraceOptions struct {
	// NodeIPs are the node's local addresses: they satisfy addrtype LOCAL and
	// decide whether a packet is delivered locally (INPUT) or forwarded.
	// Loopback addresses are always local.
	NodeIPs []netip.Addr
	Recent  RecentMode
	// MaxPaths bounds the number of explored paths (default 4096).
	MaxPaths int
}

// Packet is the first packet of a connection (conntrack state NEW).
type Packet struct {
	Src, Dst     netip.Addr
	Protocol     string // tcp, udp or sctp
	SPort, DPort uint16
	// InIface is the interface an arriving packet came in on.
	InIface string
	// OutIface is the egress interface, for -o matches after routing.
	OutIface string
	// FromLocalProcess selects the OUTPUT path (nat OUTPUT, filter OUTPUT)
	// instead of the arriving path (nat PREROUTING, filter INPUT/FORWARD).
	FromLocalProcess bool
	// Mark is the packet mark before the first rule.
	Mark uint32
}

// Verdicts of a traced path.
const (
	VerdictAccept = "ACCEPT"
	VerdictDrop   = "DROP"
	VerdictReject = "REJECT"
)

// TracedRule is one rule that matched on a path.
type TracedRule struct {
	Table, Chain string
	Index        int // 1-based position in the chain
	Rule         string
}

func (r TracedRule) String() string {
	return fmt.Sprintf("%s/%s#%d: %s", r.Table, r.Chain, r.Index, r.Rule)
}

// Path is one way the packet can go.
type Path struct {
	// Probability is the product of the statistic branches taken.
	Probability float64
	// Sticky is set when a recent --rcheck matched (RecentMayMatch); the
	// probability of such a path is not known.
	Sticky bool
	// DNAT is the destination set by a DNAT target; invalid when none.
	DNAT netip.AddrPort
	// Masquerade is set when MASQUERADE ran in nat POSTROUTING.
	Masquerade bool
	// Local is true when the packet is delivered to the node itself.
	Local      bool
	Verdict    string
	RejectWith string
	Mark       uint32
	Rules      []TracedRule
}

// TraceResult holds every path of a packet.
type TraceResult struct{ Paths []Path }

// Destinations sums, per DNAT destination, the probability of the accepted,
// non-sticky paths that reach it.
func (r TraceResult) Destinations() map[netip.AddrPort]float64 {
	out := map[netip.AddrPort]float64{}
	for _, p := range r.Paths {
		if p.Verdict == VerdictAccept && p.DNAT.IsValid() && !p.Sticky {
			out[p.DNAT] += p.Probability
		}
	}
	return out
}

// Verdicts lists the distinct verdicts of all paths, sorted.
func (r TraceResult) Verdicts() []string {
	set := map[string]bool{}
	for _, p := range r.Paths {
		set[p.Verdict] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// Masqueraded reports whether every accepted path was masqueraded (false
// when no path is accepted).
func (r TraceResult) Masqueraded() bool {
	accepted := false
	for _, p := range r.Paths {
		if p.Verdict != VerdictAccept {
			continue
		}
		if !p.Masquerade {
			return false
		}
		accepted = true
	}
	return accepted
}

// String explains every path, one rule per line.
func (r TraceResult) String() string {
	var b strings.Builder
	for i, p := range r.Paths {
		fmt.Fprintf(&b, "path %d: p=%.4f sticky=%v dnat=%v masq=%v local=%v verdict=%s\n",
			i, p.Probability, p.Sticky, p.DNAT, p.Masquerade, p.Local, p.Verdict)
		for _, tr := range p.Rules {
			fmt.Fprintf(&b, "  %s\n", tr)
		}
	}
	return b.String()
}

// Trace follows the first packet of a connection through the tables the way
// the kernel does (nat PREROUTING or OUTPUT, then filter INPUT, FORWARD or
// OUTPUT, then nat POSTROUTING), exploring both outcomes of every statistic
// match. Missing tables and chains accept. It fails on jump loops, deep
// recursion, or more than MaxPaths paths.
func Trace(tables map[string]*Table, opts TraceOptions, pkt Packet) (TraceResult, error) {
	if !pkt.Src.IsValid() || !pkt.Dst.IsValid() {
		return TraceResult{}, errors.New("trace: packet needs source and destination")
	}
	if opts.MaxPaths == 0 {
		opts.MaxPaths = 4096
	}
	w := &walker{opts: opts, tables: indexTables(tables)}
	start := pathState{pkt: pkt, prob: 1, mark: pkt.Mark, ctstates: []string{"NEW"}}
	var paths []Path
	for _, st := range w.stages(start) {
		paths = append(paths, st.path())
	}
	if w.err != nil {
		return TraceResult{}, w.err
	}
	return TraceResult{Paths: paths}, nil
}

type chainIndex map[string]*Chain

func indexTables(tables map[string]*Table) map[string]chainIndex {
	out := map[string]chainIndex{}
	for name, t := range tables {
		idx := chainIndex{}
		for _, c := range t.Chains {
			idx[c.Name] = c
		}
		out[name] = idx
	}
	return out
}

// pathState is a packet on one path.
type pathState struct {
	pkt        Packet
	mark       uint32
	prob       float64
	sticky     bool
	dnat       netip.AddrPort
	masq       bool
	local      bool
	ctstates   []string
	verdict    string
	rejectWith string
	rules      []TracedRule
}

func (s pathState) fork() pathState {
	s.rules = slices.Clone(s.rules)
	s.ctstates = slices.Clone(s.ctstates)
	return s
}

func (s pathState) path() Path {
	return Path{Probability: s.prob, Sticky: s.sticky, DNAT: s.dnat, Masquerade: s.masq, Local: s.local,
		Verdict: s.verdict, RejectWith: s.rejectWith, Mark: s.mark, Rules: s.rules}
}

type walker struct {
	opts   TraceOptions
	tables map[string]chainIndex
	paths  int
	err    error
}

// stages runs the hooks in kernel order and returns the finished paths.
func (w *walker) stages(start pathState) []pathState {
	type stage struct{ table, hook string }
	var first, second []stage
	if start.pkt.FromLocalProcess {
		first = []stage{{"nat", "OUTPUT"}, {"filter", "OUTPUT"}, {"nat", "POSTROUTING"}}
	} else {
		first = []stage{{"nat", "PREROUTING"}}
	}
	states := []pathState{start}
	for _, s := range first {
		states = w.runStage(states, s.table, s.hook)
	}
	var out []pathState
	for _, st := range states {
		if st.verdict != VerdictAccept {
			out = append(out, st)
			continue
		}
		st.local = w.isLocal(st.pkt.Dst)
		switch {
		case start.pkt.FromLocalProcess && st.local:
			st.pkt.InIface = "lo"
			second = []stage{{"filter", "INPUT"}}
		case start.pkt.FromLocalProcess:
			second = nil
		case st.local:
			second = []stage{{"filter", "INPUT"}}
		default:
			second = []stage{{"filter", "FORWARD"}, {"nat", "POSTROUTING"}}
		}
		next := []pathState{st}
		for _, s := range second {
			next = w.runStage(next, s.table, s.hook)
		}
		out = append(out, next...)
	}
	return out
}

// runStage runs one built-in chain for every still-accepted state.
func (w *walker) runStage(states []pathState, table, hook string) []pathState {
	var out []pathState
	for _, st := range states {
		if st.verdict != "" && st.verdict != VerdictAccept {
			out = append(out, st)
			continue
		}
		st.verdict = ""
		c := w.tables[table][hook]
		if c == nil {
			st.verdict = VerdictAccept
			out = append(out, st)
			continue
		}
		for _, o := range w.evalFrom(st, table, c, 0, 0) {
			if o.verdict == "" {
				o.verdict = c.Policy
			}
			out = append(out, o)
		}
	}
	return out
}

const maxJumpDepth = 64

// evalFrom evaluates chain c from rule i. Each returned state either has a
// verdict or fell off the end (or hit RETURN) with verdict "".
func (w *walker) evalFrom(st pathState, table string, c *Chain, i, depth int) []pathState {
	if w.err != nil {
		return nil
	}
	for ; i < len(c.Rules); i++ {
		p, maybe := w.matchRule(&c.Rules[i], &st)
		if p == 0 && !maybe {
			continue
		}
		if p == 1 && !maybe {
			return w.applyRule(st, table, c, i, depth)
		}
		w.paths++
		if w.paths > w.opts.MaxPaths {
			w.err = fmt.Errorf("trace: more than %d paths", w.opts.MaxPaths)
			return nil
		}
		hit, miss := st.fork(), st.fork()
		if maybe {
			hit.sticky = true
		} else {
			hit.prob *= p
			miss.prob *= 1 - p
		}
		out := w.applyRule(hit, table, c, i, depth)
		return append(out, w.evalFrom(miss, table, c, i+1, depth)...)
	}
	return []pathState{st}
}

// applyRule runs the target of rule i (which matched) and continues.
func (w *walker) applyRule(st pathState, table string, c *Chain, i, depth int) []pathState {
	r := &c.Rules[i]
	st.rules = append(st.rules, TracedRule{Table: table, Chain: c.Name, Index: i + 1, Rule: r.SaveLine()})
	switch t := r.Target.(type) {
	case nil:
	case *MarkTarget:
		st.mark = t.Apply(st.mark)
	case *JumpTarget:
		return w.jump(st, table, c, i, depth, t.Chain)
	case *StandardTarget:
		if t.Verdict == "RETURN" {
			return []pathState{st}
		}
		st.verdict = t.Verdict
		return []pathState{st}
	case *RejectTarget:
		st.verdict, st.rejectWith = VerdictReject, t.With
		return []pathState{st}
	case *DNATTarget:
		port := t.Port
		if port == 0 {
			port = st.pkt.DPort
		}
		st.pkt.Dst, st.pkt.DPort = t.Addr, port
		st.dnat = netip.AddrPortFrom(t.Addr, port)
		st.ctstates = append(st.ctstates, "DNAT")
		st.verdict = VerdictAccept
		return []pathState{st}
	case *MasqueradeTarget:
		st.masq, st.verdict = true, VerdictAccept
		return []pathState{st}
	}
	return w.evalFrom(st, table, c, i+1, depth)
}

func (w *walker) jump(st pathState, table string, c *Chain, i, depth int, target string) []pathState {
	sub := w.tables[table][target]
	if sub == nil {
		w.err = fmt.Errorf("trace: %s/%s jumps to missing chain %s", table, c.Name, target)
		return nil
	}
	if depth >= maxJumpDepth {
		w.err = fmt.Errorf("trace: jump depth over %d at %s/%s (loop?)", maxJumpDepth, table, target)
		return nil
	}
	var out []pathState
	for _, o := range w.evalFrom(st, table, sub, 0, depth+1) {
		if o.verdict != "" {
			out = append(out, o)
			continue
		}
		out = append(out, w.evalFrom(o, table, c, i+1, depth)...)
	}
	return out
}
