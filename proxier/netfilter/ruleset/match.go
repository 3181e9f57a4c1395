package ruleset

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// Match is one -m match of a rule. The concrete types are *CommentMatch,
// *PortMatch, *AddrTypeMatch, *MarkMatch, *ConntrackMatch, *StatisticMatch
// and *RecentMatch.
type Match interface {
	// Module is the name after -m.
	Module() string
	// SaveArgs returns the match options as iptables-save prints them
	// (without "-m module"); strings that iptables-save quotes are quoted.
	SaveArgs() []string
}

type matchParser interface {
	Match
	option(opt string, neg bool, r *argReader) (bool, error)
	finish() error
}

func newMatch(name string, family v1.IPFamily) (matchParser, error) {
	switch name {
	case "comment":
		return &CommentMatch{}, nil
	case "tcp", "udp", "sctp":
		return &PortMatch{Proto: name}, nil
	case "addrtype":
		return &AddrTypeMatch{}, nil
	case "mark":
		return &MarkMatch{}, nil
	case "conntrack":
		return &ConntrackMatch{}, nil
	case "statistic":
		return &StatisticMatch{}, nil
	case "recent":
		return &RecentMatch{Name: "DEFAULT", Source: true, family: family}, nil
	}
	return nil, fmt.Errorf("couldn't load match %q: unsupported by this model", name)
}

func noNegation(opt string, neg bool) error {
	if neg {
		return fmt.Errorf("option %q cannot be negated", opt)
	}
	return nil
}

// MaxCommentLen is the longest comment the kernel stores, in bytes.
const MaxCommentLen = 255

// CommentMatch is -m comment --comment TEXT.
type CommentMatch struct{ Text string }

func (m *CommentMatch) Module() string     { return "comment" }
func (m *CommentMatch) SaveArgs() []string { return []string{"--comment", QuoteArg(m.Text)} }

func (m *CommentMatch) option(opt string, neg bool, r *argReader) (bool, error) {
	if opt != "--comment" {
		return false, nil
	}
	if err := noNegation(opt, neg); err != nil {
		return true, err
	}
	v, err := r.value(opt)
	if err != nil {
		return true, err
	}
	// libxt_comment copies at most 255 bytes (XT_MAX_COMMENT_LEN - 1) and
	// silently drops the rest, even in the middle of a UTF-8 sequence.
	if len(v) > MaxCommentLen {
		v = v[:MaxCommentLen]
	}
	m.Text = v
	return true, nil
}

func (m *CommentMatch) finish() error { return nil }

// PortRange is a --dport or --sport value.
type PortRange struct {
	Negated     bool
	First, Last uint16
}

// Contains reports whether the port satisfies the range, negation included.
func (p *PortRange) Contains(port uint16) bool {
	return (port >= p.First && port <= p.Last) != p.Negated
}

func (p *PortRange) String() string {
	if p.First == p.Last {
		return strconv.Itoa(int(p.First))
	}
	return fmt.Sprintf("%d:%d", p.First, p.Last)
}

// PortMatch is -m tcp, -m udp or -m sctp with optional --sport/--dport.
type PortMatch struct {
	Proto        string
	SPort, DPort *PortRange
}

func (m *PortMatch) Module() string { return m.Proto }

func (m *PortMatch) SaveArgs() []string {
	var out []string
	if m.SPort != nil {
		out = appendNeg(out, m.SPort.Negated, "--sport", m.SPort.String())
	}
	if m.DPort != nil {
		out = appendNeg(out, m.DPort.Negated, "--dport", m.DPort.String())
	}
	return out
}

func (m *PortMatch) option(opt string, neg bool, r *argReader) (bool, error) {
	var dst **PortRange
	switch opt {
	case "--dport", "--destination-port":
		dst = &m.DPort
	case "--sport", "--source-port":
		dst = &m.SPort
	default:
		return false, nil
	}
	if *dst != nil {
		return true, fmt.Errorf("multiple %s flags not allowed", opt)
	}
	v, err := r.value(opt)
	if err != nil {
		return true, err
	}
	pr, err := parsePortRange(v)
	if err != nil {
		return true, err
	}
	pr.Negated = neg
	*dst = pr
	return true, nil
}

func parsePortRange(v string) (*PortRange, error) {
	lo, hi, isRange := strings.Cut(v, ":")
	first, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("invalid port %q", v)
	}
	last := first
	if isRange {
		if last, err = strconv.ParseUint(hi, 10, 16); err != nil || last < first {
			return nil, fmt.Errorf("invalid port range %q", v)
		}
	}
	return &PortRange{First: uint16(first), Last: uint16(last)}, nil
}

func (m *PortMatch) finish() error { return nil }

// AddrTypeSpec is a --src-type or --dst-type value.
type AddrTypeSpec struct {
	Negated bool
	Types   []string // upper case, e.g. LOCAL
}

var addrTypes = []string{"UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST",
	"BLACKHOLE", "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE"}

// AddrTypeMatch is -m addrtype.
type AddrTypeMatch struct{ Src, Dst *AddrTypeSpec }

func (m *AddrTypeMatch) Module() string { return "addrtype" }

func (m *AddrTypeMatch) SaveArgs() []string {
	var out []string
	if m.Src != nil {
		out = appendNeg(out, m.Src.Negated, "--src-type", strings.Join(m.Src.Types, ","))
	}
	if m.Dst != nil {
		out = appendNeg(out, m.Dst.Negated, "--dst-type", strings.Join(m.Dst.Types, ","))
	}
	return out
}

func (m *AddrTypeMatch) option(opt string, neg bool, r *argReader) (bool, error) {
	var dst **AddrTypeSpec
	switch opt {
	case "--src-type":
		dst = &m.Src
	case "--dst-type":
		dst = &m.Dst
	default:
		return false, nil
	}
	v, err := r.value(opt)
	if err != nil {
		return true, err
	}
	spec := &AddrTypeSpec{Negated: neg}
	for _, t := range strings.Split(strings.ToUpper(v), ",") {
		if !slices.Contains(addrTypes, t) {
			return true, fmt.Errorf("unknown address type %q", t)
		}
		spec.Types = append(spec.Types, t)
	}
	// The kernel keeps a bit mask; iptables-save prints it in this order.
	slices.SortFunc(spec.Types, func(a, b string) int { return slices.Index(addrTypes, a) - slices.Index(addrTypes, b) })
	*dst = spec
	return true, nil
}

func (m *AddrTypeMatch) finish() error {
	if m.Src == nil && m.Dst == nil {
		return fmt.Errorf("addrtype needs --src-type or --dst-type")
	}
	return nil
}

// MarkMatch is -m mark [!] --mark VALUE[/MASK]: (mark & Mask) == Value.
type MarkMatch struct {
	Negated     bool
	Value, Mask uint32
	set         bool
}

func (m *MarkMatch) Module() string { return "mark" }

func (m *MarkMatch) SaveArgs() []string {
	v := fmt.Sprintf("0x%x", m.Value)
	if m.Mask != math.MaxUint32 {
		v += fmt.Sprintf("/0x%x", m.Mask)
	}
	return appendNeg(nil, m.Negated, "--mark", v)
}

// Matches reports whether a packet mark satisfies the match.
func (m *MarkMatch) Matches(mark uint32) bool { return (mark&m.Mask == m.Value) != m.Negated }

func (m *MarkMatch) option(opt string, neg bool, r *argReader) (bool, error) {
	if opt != "--mark" {
		return false, nil
	}
	v, err := r.value(opt)
	if err != nil {
		return true, err
	}
	if m.Value, m.Mask, err = parseMarkMask(v); err != nil {
		return true, err
	}
	m.Negated, m.set = neg, true
	return true, nil
}

// parseMarkMask parses VALUE[/MASK]; the mask defaults to all ones.
func parseMarkMask(v string) (value, mask uint32, err error) {
	val, msk, hasMask := strings.Cut(v, "/")
	n, err := strconv.ParseUint(val, 0, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("bad mark value %q", v)
	}
	mask = math.MaxUint32
	if hasMask {
		mk, err := strconv.ParseUint(msk, 0, 32)
		if err != nil {
			return 0, 0, fmt.Errorf("bad mark mask %q", v)
		}
		mask = uint32(mk)
	}
	return uint32(n), mask, nil
}

func (m *MarkMatch) finish() error {
	if !m.set {
		return fmt.Errorf("mark match needs --mark")
	}
	return nil
}

var ctStates = []string{"INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED", "SNAT", "DNAT"}

// ConntrackMatch is -m conntrack [!] --ctstate STATE[,STATE...].
type ConntrackMatch struct {
	Negated bool
	States  []string // in the kernel's display order
}

func (m *ConntrackMatch) Module() string { return "conntrack" }

func (m *ConntrackMatch) SaveArgs() []string {
	return appendNeg(nil, m.Negated, "--ctstate", strings.Join(m.States, ","))
}

// Matches reports whether a connection in any of the given states satisfies the match.
func (m *ConntrackMatch) Matches(states []string) bool {
	hit := slices.ContainsFunc(m.States, func(s string) bool { return slices.Contains(states, s) })
	return hit != m.Negated
}

func (m *ConntrackMatch) option(opt string, neg bool, r *argReader) (bool, error) {
	if opt != "--ctstate" {
		return false, nil
	}
	v, err := r.value(opt)
	if err != nil {
		return true, err
	}
	m.Negated, m.States = neg, nil
	for _, s := range strings.Split(strings.ToUpper(v), ",") {
		if !slices.Contains(ctStates, s) {
			return true, fmt.Errorf("bad ctstate %q", s)
		}
		if !slices.Contains(m.States, s) {
			m.States = append(m.States, s)
		}
	}
	slices.SortFunc(m.States, func(a, b string) int { return slices.Index(ctStates, a) - slices.Index(ctStates, b) })
	return true, nil
}

func (m *ConntrackMatch) finish() error {
	if len(m.States) == 0 {
		return fmt.Errorf("conntrack match needs --ctstate")
	}
	return nil
}

// StatisticMatch is -m statistic --mode random --probability P.
type StatisticMatch struct {
	// Probability is the value as written.
	Probability float64
	mode        string
	set         bool
}

func (m *StatisticMatch) Module() string { return "statistic" }

// Stored is the value the kernel keeps: round(P × 2^31).
func (m *StatisticMatch) Stored() uint32 { return ProbabilityStored(m.Probability) }

// Effective is the probability the kernel applies: Stored / 2^31.
func (m *StatisticMatch) Effective() float64 { return float64(m.Stored()) / (1 << 31) }

// ProbabilityStored converts a probability to the integer libxt_statistic
// stores, round(p × 2^31); iptables-save prints that integer / 2^31 with 11 decimals.
func ProbabilityStored(p float64) uint32 { return uint32(math.Round(p * (1 << 31))) }

func (m *StatisticMatch) SaveArgs() []string {
	return []string{"--mode", "random", "--probability", fmt.Sprintf("%.11f", m.Effective())}
}

func (m *StatisticMatch) option(opt string, neg bool, r *argReader) (bool, error) {
	if opt != "--mode" && opt != "--probability" {
		return false, nil
	}
	if err := noNegation(opt, neg); err != nil {
		return true, err
	}
	v, err := r.value(opt)
	if err != nil {
		return true, err
	}
	if opt == "--mode" {
		if v != "random" {
			return true, fmt.Errorf("statistic mode %q is not modelled", v)
		}
		m.mode = v
		return true, nil
	}
	p, err := strconv.ParseFloat(v, 64)
	if err != nil || p < 0 || p > 1 {
		return true, fmt.Errorf("bad probability %q", v)
	}
	m.Probability, m.set = p, true
	return true, nil
}

func (m *StatisticMatch) finish() error {
	if m.mode != "random" || !m.set {
		return fmt.Errorf("statistic match needs --mode random --probability")
	}
	return nil
}

// RecentMatch is -m recent (session affinity).
type RecentMatch struct {
	Name string
	// Mode is set, rcheck, update or remove.
	Mode     string
	Negated  bool
	Seconds  int
	Reap     bool
	HitCount int
	// Mask is the explicit --mask, "" for the all-ones default.
	Mask string
	// Source is true for --rsource (the default), false for --rdest.
	Source bool
	family v1.IPFamily
}

func (m *RecentMatch) Module() string { return "recent" }

func (m *RecentMatch) SaveArgs() []string {
	out := appendNeg(nil, m.Negated, "--"+m.Mode)
	if m.Seconds > 0 {
		out = append(out, "--seconds", strconv.Itoa(m.Seconds))
	}
	if m.Reap {
		out = append(out, "--reap")
	}
	if m.HitCount > 0 {
		out = append(out, "--hitcount", strconv.Itoa(m.HitCount))
	}
	mask := m.Mask
	if mask == "" {
		mask = fullMask(m.family)
	}
	out = append(out, "--name", m.Name, "--mask", mask)
	if m.Source {
		return append(out, "--rsource")
	}
	return append(out, "--rdest")
}

func (m *RecentMatch) option(opt string, neg bool, r *argReader) (bool, error) {
	switch opt {
	case "--set", "--rcheck", "--update", "--remove":
		if m.Mode != "" {
			return true, fmt.Errorf("recent: only one of --set, --rcheck, --update, --remove")
		}
		m.Mode, m.Negated = strings.TrimPrefix(opt, "--"), neg
		return true, nil
	case "--reap", "--rsource", "--rdest":
		switch opt {
		case "--reap":
			m.Reap = true
		case "--rsource":
			m.Source = true
		default:
			m.Source = false
		}
		return true, noNegation(opt, neg)
	case "--name", "--seconds", "--hitcount", "--mask":
		v, err := r.value(opt)
		if err != nil {
			return true, err
		}
		return true, m.setValue(opt, v)
	}
	return false, nil
}

func (m *RecentMatch) setValue(opt, v string) error {
	var err error
	switch opt {
	case "--name":
		m.Name = v
	case "--seconds":
		m.Seconds, err = strconv.Atoi(v)
	case "--hitcount":
		m.HitCount, err = strconv.Atoi(v)
	case "--mask":
		var a netip.Addr
		if a, err = netip.ParseAddr(v); err == nil {
			m.Mask = a.String()
			if m.Mask == fullMask(v1.IPv4Protocol) || m.Mask == fullMask(v1.IPv6Protocol) {
				m.Mask = ""
			}
		}
	}
	if err != nil {
		return fmt.Errorf("recent: bad %s %q", opt, v)
	}
	return nil
}

func (m *RecentMatch) finish() error {
	if m.Mode == "" {
		return fmt.Errorf("recent match needs one of --set, --rcheck, --update, --remove")
	}
	if m.Reap && m.Seconds == 0 {
		return fmt.Errorf("recent: --reap needs --seconds")
	}
	if m.Name == "" || len(m.Name) > 200 {
		return fmt.Errorf("recent: bad --name")
	}
	return nil
}
