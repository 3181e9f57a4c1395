package ruleset

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// Rule is one parsed rule: its arguments as written (after "-A CHAIN") and
// their structured meaning. A parsed Rule is never mutated; copies share it.
type Rule struct {
	// Args are the arguments as written, already unquoted.
	Args []string
	// Family is the address family the rule was parsed for.
	Family v1.IPFamily

	Source, Destination *AddrMatch
	Protocol            *ProtoMatch
	InIface, OutIface   *IfaceMatch
	// Matches are the -m matches in the order written; an implicit protocol
	// match ("-p tcp --dport 80" without "-m tcp") is added where its first
	// option appears, as iptables does.
	Matches []Match
	// Target is nil for a rule without -j.
	Target Target
}

// AddrMatch is -s or -d.
type AddrMatch struct {
	Negated bool
	Prefix  netip.Prefix // masked
}

// ProtoMatch is -p.
type ProtoMatch struct {
	Negated bool
	Name    string // lower case: tcp, udp, sctp, icmp, icmpv6, all, or a number
}

// IfaceMatch is -i or -o; a trailing "+" matches every name with that prefix.
type IfaceMatch struct {
	Negated bool
	Name    string
}

// Matches reports whether the interface name satisfies the match.
func (m *IfaceMatch) Matches(iface string) bool {
	var ok bool
	if prefix, wild := strings.CutSuffix(m.Name, "+"); wild {
		ok = strings.HasPrefix(iface, prefix)
	} else {
		ok = iface == m.Name
	}
	return ok != m.Negated
}

// Comment returns the text of the rule's first comment match, or "".
func (r *Rule) Comment() string {
	for _, m := range r.Matches {
		if c, ok := m.(*CommentMatch); ok {
			return c.Text
		}
	}
	return ""
}

// TargetName is the name after -j, or "" when the rule has no target.
func (r *Rule) TargetName() string {
	if r.Target == nil {
		return ""
	}
	return r.Target.Name()
}

// String renders the rule as restore arguments in the order written.
func (r *Rule) String() string {
	out := make([]string, len(r.Args))
	for i, a := range r.Args {
		out[i] = quoteRestoreArg(a)
	}
	return strings.Join(out, " ")
}

// argReader walks a rule's arguments.
type argReader struct {
	args []string
	i    int
}

func (r *argReader) done() bool { return r.i >= len(r.args) }

func (r *argReader) next() string {
	a := r.args[r.i]
	r.i++
	return a
}

// value returns the argument of option opt.
func (r *argReader) value(opt string) (string, error) {
	if r.done() {
		return "", fmt.Errorf("option %q requires an argument", opt)
	}
	return r.next(), nil
}

// ParseRule parses rule arguments (everything after "-A CHAIN"). family
// selects which addresses are valid; when empty, the family is taken from the
// first address in the rule (IPv4 if there is none).
func ParseRule(args []string, family v1.IPFamily) (Rule, error) {
	p := ruleParser{rule: Rule{Args: slices.Clone(args), Family: family}, r: argReader{args: args}}
	if err := p.parse(); err != nil {
		return Rule{}, err
	}
	if p.rule.Family == "" {
		p.rule.Family = v1.IPv4Protocol
		setFamily(&p.rule, v1.IPv4Protocol)
	}
	return p.rule, nil
}

type ruleParser struct {
	rule   Rule
	r      argReader
	target targetParser
}

func (p *ruleParser) parse() error {
	for !p.r.done() {
		neg := false
		opt := p.r.next()
		if opt == "!" {
			if p.r.done() {
				return fmt.Errorf("%q at end of rule", "!")
			}
			neg, opt = true, p.r.next()
		}
		if err := p.option(opt, neg); err != nil {
			return err
		}
	}
	return p.finish()
}

func (p *ruleParser) option(opt string, neg bool) error {
	switch opt {
	case "-s", "--source", "-d", "--destination":
		return p.addr(opt, neg)
	case "-p", "--protocol":
		return p.proto(opt, neg)
	case "-i", "--in-interface", "-o", "--out-interface":
		return p.iface(opt, neg)
	case "-m", "--match":
		return p.match(opt, neg)
	case "-j", "--jump":
		return p.jump(opt, neg)
	}
	if !strings.HasPrefix(opt, "--") {
		return fmt.Errorf("unknown argument %q", opt)
	}
	return p.extensionOption(opt, neg)
}

func (p *ruleParser) addr(opt string, neg bool) error {
	v, err := p.r.value(opt)
	if err != nil {
		return err
	}
	prefix, err := p.parsePrefix(v)
	if err != nil {
		return err
	}
	dst := &p.rule.Source
	if opt == "-d" || opt == "--destination" {
		dst = &p.rule.Destination
	}
	if *dst != nil {
		return fmt.Errorf("multiple %s flags not allowed", opt)
	}
	*dst = &AddrMatch{Negated: neg, Prefix: prefix}
	return nil
}

// parsePrefix parses an address or CIDR and checks its family.
func (p *ruleParser) parsePrefix(v string) (netip.Prefix, error) {
	var prefix netip.Prefix
	var err error
	if strings.Contains(v, "/") {
		prefix, err = netip.ParsePrefix(v)
	} else {
		var a netip.Addr
		a, err = netip.ParseAddr(v)
		if err == nil {
			prefix = netip.PrefixFrom(a, a.BitLen())
		}
	}
	if err != nil || prefix.Addr().Zone() != "" || prefix.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("host/network %q not found", v)
	}
	if err := p.checkFamily(prefix.Addr(), v); err != nil {
		return netip.Prefix{}, err
	}
	return prefix.Masked(), nil
}

// checkFamily fixes the rule's family on the first address and rejects
// addresses of the other family.
func (p *ruleParser) checkFamily(a netip.Addr, text string) error {
	fam := v1.IPv4Protocol
	if a.Is6() {
		fam = v1.IPv6Protocol
	}
	if p.rule.Family == "" {
		p.rule.Family = fam
		setFamily(&p.rule, fam)
	}
	if p.rule.Family != fam {
		return fmt.Errorf("host/network %q not found: not an %s address", text, p.rule.Family)
	}
	return nil
}

// setFamily fills the family into matches parsed before it was known.
func setFamily(r *Rule, fam v1.IPFamily) {
	for _, m := range r.Matches {
		if rm, ok := m.(*RecentMatch); ok && rm.Mask == "" {
			rm.family = fam
		}
	}
}

var knownProtocols = []string{"tcp", "udp", "sctp", "icmp", "icmpv6", "ipv6-icmp", "all", "esp", "ah", "gre", "dccp", "udplite"}

func (p *ruleParser) proto(opt string, neg bool) error {
	v, err := p.r.value(opt)
	if err != nil {
		return err
	}
	if p.rule.Protocol != nil {
		return fmt.Errorf("multiple %s flags not allowed", opt)
	}
	name := strings.ToLower(v)
	if n, err := strconv.Atoi(name); err != nil && !slices.Contains(knownProtocols, name) || err == nil && (n < 0 || n > 255) {
		return fmt.Errorf("unknown protocol %q specified", v)
	}
	p.rule.Protocol = &ProtoMatch{Negated: neg, Name: name}
	return nil
}

func (p *ruleParser) iface(opt string, neg bool) error {
	v, err := p.r.value(opt)
	if err != nil {
		return err
	}
	if v == "" || len(v) > 15 || strings.ContainsAny(v, " /") {
		return fmt.Errorf("invalid interface name %q", v)
	}
	dst := &p.rule.InIface
	if opt == "-o" || opt == "--out-interface" {
		dst = &p.rule.OutIface
	}
	if *dst != nil {
		return fmt.Errorf("multiple %s flags not allowed", opt)
	}
	*dst = &IfaceMatch{Negated: neg, Name: v}
	return nil
}

func (p *ruleParser) match(opt string, neg bool) error {
	if neg {
		return fmt.Errorf("unexpected %q before %s", "!", opt)
	}
	name, err := p.r.value(opt)
	if err != nil {
		return err
	}
	m, err := newMatch(name, p.rule.Family)
	if err != nil {
		return err
	}
	p.rule.Matches = append(p.rule.Matches, m)
	return nil
}

func (p *ruleParser) jump(opt string, neg bool) error {
	if neg {
		return fmt.Errorf("cannot negate %s", opt)
	}
	if p.rule.Target != nil {
		return fmt.Errorf("multiple %s flags not allowed", opt)
	}
	name, err := p.r.value(opt)
	if err != nil {
		return err
	}
	if name == "" {
		return fmt.Errorf("empty target name")
	}
	p.target = newTarget(name)
	p.rule.Target = p.target
	return nil
}

// extensionOption hands an option to the target, then to the matches from the
// last one back, then to an implicit protocol match, as iptables does.
func (p *ruleParser) extensionOption(opt string, neg bool) error {
	if p.target != nil {
		if ok, err := p.target.option(opt, neg, &p.r, p); ok || err != nil {
			return err
		}
	}
	for i := len(p.rule.Matches) - 1; i >= 0; i-- {
		if ok, err := p.rule.Matches[i].(matchParser).option(opt, neg, &p.r); ok || err != nil {
			return err
		}
	}
	if pr := p.rule.Protocol; pr != nil && !pr.Negated && isPortProto(pr.Name) {
		m := &PortMatch{Proto: pr.Name}
		if ok, err := m.option(opt, neg, &p.r); ok || err != nil {
			if err == nil {
				p.rule.Matches = append(p.rule.Matches, m)
			}
			return err
		}
	}
	return fmt.Errorf("unknown option %q", opt)
}

func (p *ruleParser) finish() error {
	for _, m := range p.rule.Matches {
		if err := m.(matchParser).finish(); err != nil {
			return err
		}
		if pm, ok := m.(*PortMatch); ok {
			if pr := p.rule.Protocol; pr == nil || pr.Negated || pr.Name != pm.Proto {
				return fmt.Errorf("match %q needs \"-p %s\"", pm.Proto, pm.Proto)
			}
		}
	}
	if p.target != nil {
		return p.target.finish(&p.rule)
	}
	return nil
}

func isPortProto(p string) bool { return p == "tcp" || p == "udp" || p == "sctp" }

// SaveArgs renders the rule as iptables-save prints it: -s, -d, -i, -o, -p
// first, then the matches in order, then the target, with addresses as
// masked prefixes and every option in the kernel's canonical spelling.
func (r *Rule) SaveArgs() []string {
	return r.render(false)
}

// render builds the display form; canonical additionally drops /32 and /128
// and sorts the matches by module (see Normalize).
func (r *Rule) render(canonical bool) []string {
	var out []string
	out = appendAddr(out, "-s", r.Source, canonical)
	out = appendAddr(out, "-d", r.Destination, canonical)
	if r.InIface != nil {
		out = appendNeg(out, r.InIface.Negated, "-i", r.InIface.Name)
	}
	if r.OutIface != nil {
		out = appendNeg(out, r.OutIface.Negated, "-o", r.OutIface.Name)
	}
	if r.Protocol != nil {
		out = appendNeg(out, r.Protocol.Negated, "-p", r.Protocol.Name)
	}
	matches := r.Matches
	if canonical {
		matches = slices.Clone(matches)
		slices.SortStableFunc(matches, func(a, b Match) int { return strings.Compare(a.Module(), b.Module()) })
	}
	for _, m := range matches {
		out = append(out, "-m", m.Module())
		out = append(out, m.SaveArgs()...)
	}
	if r.Target != nil {
		out = append(out, "-j", r.Target.Name())
		out = append(out, r.Target.SaveArgs()...)
	}
	return out
}

func appendAddr(out []string, flag string, m *AddrMatch, canonical bool) []string {
	if m == nil {
		return out
	}
	v := m.Prefix.String()
	if canonical && m.Prefix.IsSingleIP() {
		v = m.Prefix.Addr().String()
	}
	return appendNeg(out, m.Negated, flag, v)
}

func appendNeg(out []string, neg bool, args ...string) []string {
	if neg {
		out = append(out, "!")
	}
	return append(out, args...)
}

// SaveLine renders the rule's display form as one string; SaveArgs tokens are
// already quoted where iptables-save quotes them (comments).
func (r *Rule) SaveLine() string {
	return strings.Join(r.SaveArgs(), " ")
}
