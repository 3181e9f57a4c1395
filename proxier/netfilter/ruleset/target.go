package ruleset

import (
	"fmt"
	"net/netip"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// Target is the -j part of a rule. The concrete types are *JumpTarget,
// *StandardTarget, *RejectTarget, *DNATTarget, *MarkTarget and
// *MasqueradeTarget.
type Target interface {
	// Name is the word after -j.
	Name() string
	// SaveArgs returns the target options as iptables-save prints them.
	SaveArgs() []string
}

type targetParser interface {
	Target
	option(opt string, neg bool, r *argReader, p *ruleParser) (bool, error)
	finish(rule *Rule) error
}

func newTarget(name string) targetParser {
	switch name {
	case "ACCEPT", "DROP", "RETURN":
		return &StandardTarget{Verdict: name}
	case "REJECT":
		return &RejectTarget{}
	case "DNAT":
		return &DNATTarget{}
	case "MARK":
		return &MarkTarget{}
	case "MASQUERADE":
		return &MasqueradeTarget{}
	}
	return &JumpTarget{Chain: name}
}

// JumpTarget is a jump to a user-defined chain.
type JumpTarget struct{ Chain string }

func (t *JumpTarget) Name() string       { return t.Chain }
func (t *JumpTarget) SaveArgs() []string { return nil }
func (t *JumpTarget) option(string, bool, *argReader, *ruleParser) (bool, error) {
	return false, nil
}
func (t *JumpTarget) finish(*Rule) error { return nil }

// StandardTarget is ACCEPT, DROP or RETURN.
type StandardTarget struct{ Verdict string }

func (t *StandardTarget) Name() string       { return t.Verdict }
func (t *StandardTarget) SaveArgs() []string { return nil }
func (t *StandardTarget) option(string, bool, *argReader, *ruleParser) (bool, error) {
	return false, nil
}
func (t *StandardTarget) finish(*Rule) error { return nil }

// RejectTarget is REJECT [--reject-with TYPE].
type RejectTarget struct {
	// With is the canonical ICMP type, e.g. icmp-port-unreachable.
	With string
}

var rejectTypes = map[v1.IPFamily]map[string]string{
	v1.IPv4Protocol: {
		"icmp-net-unreachable": "", "net-unreach": "icmp-net-unreachable",
		"icmp-host-unreachable": "", "host-unreach": "icmp-host-unreachable",
		"icmp-port-unreachable": "", "port-unreach": "icmp-port-unreachable",
		"icmp-proto-unreachable": "", "proto-unreach": "icmp-proto-unreachable",
		"icmp-net-prohibited": "", "net-prohib": "icmp-net-prohibited",
		"icmp-host-prohibited": "", "host-prohib": "icmp-host-prohibited",
		"icmp-admin-prohibited": "", "admin-prohib": "icmp-admin-prohibited",
		"tcp-reset": "", "tcp-rst": "tcp-reset",
	},
	v1.IPv6Protocol: {
		"icmp6-no-route": "", "no-route": "icmp6-no-route",
		"icmp6-adm-prohibited": "", "adm-prohibited": "icmp6-adm-prohibited",
		"icmp6-addr-unreachable": "", "addr-unreach": "icmp6-addr-unreachable",
		"icmp6-port-unreachable": "", "port-unreach": "icmp6-port-unreachable",
		"icmp6-policy-fail": "", "icmp6-reject-route": "",
		"tcp-reset": "", "tcp-rst": "tcp-reset",
	},
}

func (t *RejectTarget) Name() string       { return "REJECT" }
func (t *RejectTarget) SaveArgs() []string { return []string{"--reject-with", t.With} }

func (t *RejectTarget) option(opt string, neg bool, r *argReader, _ *ruleParser) (bool, error) {
	if opt != "--reject-with" {
		return false, nil
	}
	v, err := r.value(opt)
	if err != nil {
		return true, err
	}
	t.With = v
	return true, noNegation(opt, neg)
}

func (t *RejectTarget) finish(rule *Rule) error {
	fam := rule.Family
	if fam == "" {
		fam = v1.IPv4Protocol
	}
	if t.With == "" {
		t.With = map[v1.IPFamily]string{v1.IPv4Protocol: "icmp-port-unreachable", v1.IPv6Protocol: "icmp6-port-unreachable"}[fam]
	}
	canonical, ok := rejectTypes[fam][t.With]
	if !ok {
		return fmt.Errorf("unknown reject type %q", t.With)
	}
	if canonical != "" {
		t.With = canonical
	}
	return nil
}

// DNATTarget is DNAT --to-destination ADDR[:PORT].
type DNATTarget struct {
	Addr netip.Addr
	Port uint16 // 0 when no port is given
}

func (t *DNATTarget) Name() string { return "DNAT" }

// Destination renders the --to-destination value ("10.0.0.1:80", "[fd00::1]:80", "fd00::1").
func (t *DNATTarget) Destination() string {
	if t.Port == 0 {
		return t.Addr.String()
	}
	return netip.AddrPortFrom(t.Addr, t.Port).String()
}

func (t *DNATTarget) SaveArgs() []string { return []string{"--to-destination", t.Destination()} }

func (t *DNATTarget) option(opt string, neg bool, r *argReader, p *ruleParser) (bool, error) {
	if opt != "--to-destination" {
		return false, nil
	}
	if t.Addr.IsValid() {
		return true, fmt.Errorf("multiple --to-destination not modelled")
	}
	v, err := r.value(opt)
	if err != nil {
		return true, err
	}
	if err := t.parse(v); err != nil {
		return true, err
	}
	if err := p.checkFamily(t.Addr, v); err != nil {
		return true, err
	}
	return true, noNegation(opt, neg)
}

func (t *DNATTarget) parse(v string) error {
	if ap, err := netip.ParseAddrPort(v); err == nil && ap.Port() != 0 {
		t.Addr, t.Port = ap.Addr(), ap.Port()
		return nil
	}
	if a, err := netip.ParseAddr(v); err == nil && a.Zone() == "" {
		t.Addr = a
		return nil
	}
	return fmt.Errorf("bad IP address %q", v)
}

func (t *DNATTarget) finish(rule *Rule) error {
	if !t.Addr.IsValid() {
		return fmt.Errorf("DNAT needs --to-destination")
	}
	if t.Port != 0 && (rule.Protocol == nil || rule.Protocol.Negated || !isPortProto(rule.Protocol.Name)) {
		return fmt.Errorf("need TCP, UDP, SCTP or DCCP with port specification")
	}
	return nil
}

// MarkTarget is MARK in the kernel's form: mark = (mark &^ Mask) ^ Value.
// --or-mark X is X/X, --xor-mark X is X/0, --and-mark X is 0/^X and
// --set-mark X[/M] is X/(M|X) with M defaulting to all ones.
type MarkTarget struct {
	Value, Mask uint32
	set         bool
}

func (t *MarkTarget) Name() string { return "MARK" }

func (t *MarkTarget) SaveArgs() []string {
	return []string{"--set-xmark", fmt.Sprintf("0x%x/0x%x", t.Value, t.Mask)}
}

// Apply returns the packet mark after the target.
func (t *MarkTarget) Apply(mark uint32) uint32 { return (mark &^ t.Mask) ^ t.Value }

func (t *MarkTarget) option(opt string, neg bool, r *argReader, _ *ruleParser) (bool, error) {
	switch opt {
	case "--set-xmark", "--set-mark", "--or-mark", "--xor-mark", "--and-mark":
	default:
		return false, nil
	}
	if t.set {
		return true, fmt.Errorf("MARK: only one of --set-xmark, --set-mark, --or-mark, --xor-mark, --and-mark")
	}
	v, err := r.value(opt)
	if err != nil {
		return true, err
	}
	val, mask, err := parseMarkMask(v)
	if err != nil {
		return true, err
	}
	if opt != "--set-xmark" && opt != "--set-mark" && strings.Contains(v, "/") {
		return true, fmt.Errorf("MARK: %s takes no mask", opt)
	}
	switch opt {
	case "--set-xmark":
		t.Value, t.Mask = val, mask
	case "--set-mark":
		t.Value, t.Mask = val, mask|val
	case "--or-mark":
		t.Value, t.Mask = val, val
	case "--xor-mark":
		t.Value, t.Mask = val, 0
	case "--and-mark":
		t.Value, t.Mask = 0, ^val
	}
	t.set = true
	return true, noNegation(opt, neg)
}

func (t *MarkTarget) finish(*Rule) error {
	if !t.set {
		return fmt.Errorf("MARK target needs an option")
	}
	return nil
}

// MasqueradeTarget is MASQUERADE [--random] [--random-fully].
type MasqueradeTarget struct {
	Random, RandomFully bool
}

func (t *MasqueradeTarget) Name() string { return "MASQUERADE" }

func (t *MasqueradeTarget) SaveArgs() []string {
	var out []string
	if t.Random {
		out = append(out, "--random")
	}
	if t.RandomFully {
		out = append(out, "--random-fully")
	}
	return out
}

func (t *MasqueradeTarget) option(opt string, neg bool, _ *argReader, _ *ruleParser) (bool, error) {
	switch opt {
	case "--random":
		t.Random = true
	case "--random-fully":
		t.RandomFully = true
	default:
		return false, nil
	}
	return true, noNegation(opt, neg)
}

func (t *MasqueradeTarget) finish(*Rule) error { return nil }
