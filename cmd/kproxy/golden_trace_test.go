package main

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// goldenPacket is one line of a case's "packets" file:
//
//	LABEL: SOURCE -> DESTINATION:PORT/PROTOCOL [from-node] [in=IFACE] [recent]
//
// (an IPv6 destination in brackets). from-node sends it from a process on
// the node (the OUTPUT path) instead of arriving from outside or from a pod;
// in= names the interface it arrives on; recent lets -m recent (ClientIP
// affinity) match, as for a client seen before.
type goldenPacket struct {
	label  string
	spec   string // the line after the label, normalized to single spaces
	pkt    ruleset.Packet
	recent bool
}

func parsePackets(data []byte) ([]goldenPacket, error) {
	var out []goldenPacket
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p, err := parsePacket(line)
		if err != nil {
			return nil, fmt.Errorf("packets line %d: %w", n+1, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePacket(line string) (goldenPacket, error) {
	label, rest, ok := strings.Cut(line, ":")
	fields := strings.Fields(rest)
	if !ok || len(fields) < 3 || fields[1] != "->" {
		return goldenPacket{}, fmt.Errorf("%q is not LABEL: SOURCE -> DESTINATION:PORT/PROTOCOL [options]", line)
	}
	src, err := netip.ParseAddr(fields[0])
	if err != nil {
		return goldenPacket{}, err
	}
	dst, proto, _ := strings.Cut(fields[2], "/")
	ap, err := netip.ParseAddrPort(dst)
	if err != nil || (proto != "tcp" && proto != "udp" && proto != "sctp") {
		return goldenPacket{}, fmt.Errorf("destination %q is not ADDRESS:PORT/tcp|udp|sctp", fields[2])
	}
	p := goldenPacket{label: strings.TrimSpace(label), spec: strings.Join(fields, " "), pkt: ruleset.Packet{Src: src, Dst: ap.Addr(), DPort: ap.Port(),
		Protocol: proto, SPort: 40000}}
	for _, opt := range fields[3:] {
		switch name, val, _ := strings.Cut(opt, "="); name {
		case "from-node":
			p.pkt.FromLocalProcess = true
		case "in":
			p.pkt.InIface = val
		case "recent":
			p.recent = true
		default:
			return goldenPacket{}, fmt.Errorf("unknown option %q", opt)
		}
	}
	return p, nil
}

// traceDryRun traces each packet through the iptables rules of a dry run
// (both families' restore inputs, applied to empty tables as the dry run
// assumes) on a node whose local addresses are local. It prints, per
// packet, each distinct outcome with the probability of reaching it.
func traceDryRun(out []byte, local []netip.Addr, packets []goldenPacket) (string, error) {
	tables, err := dryRunTables(out)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, p := range packets {
		fam := proxier.FamilyOf(p.pkt.Dst)
		opts := ruleset.TraceOptions{NodeIPs: local}
		if p.recent {
			opts.Recent = ruleset.RecentMayMatch
		}
		res, err := ruleset.Trace(tables[fam], opts, p.pkt)
		if err != nil {
			return "", fmt.Errorf("trace %s: %w", p.label, err)
		}
		fmt.Fprintf(&b, "%s: %s\n", p.label, p.spec)
		for _, o := range outcomes(res) {
			b.WriteString("  " + o + "\n")
		}
	}
	return b.String(), nil
}

// dryRunTables applies each family's "iptables-restore --noflush input"
// section of a dry run to an empty Fake.
func dryRunTables(out []byte) (map[v1.IPFamily]map[string]*ruleset.Table, error) {
	sections := map[v1.IPFamily]*bytes.Buffer{}
	var cur *bytes.Buffer
	for _, line := range bytes.SplitAfter(out, []byte("\n")) {
		if h, ok := bytes.CutPrefix(line, []byte("# kproxy --dry-run: ")); ok {
			cur = nil
			fam, what, _ := strings.Cut(strings.TrimSpace(string(h)), " ")
			if what == "iptables-restore --noflush input" {
				cur = &bytes.Buffer{}
				sections[v1.IPFamily(fam)] = cur
			}
			continue
		}
		if cur != nil {
			cur.Write(line)
		}
	}
	tables := map[v1.IPFamily]map[string]*ruleset.Table{}
	for fam, input := range sections {
		fake := ruleset.NewFake(ruleset.FakeOptions{Family: fam})
		if err := fake.Restore(context.Background(), input.Bytes()); err != nil {
			return nil, fmt.Errorf("%s dry-run rules do not apply: %w", fam, err)
		}
		tables[fam] = fake.Tables()
	}
	return tables, nil
}

// outcomes lists the distinct outcomes of a trace, with the summed
// probability of the paths reaching each ("?" for paths through a matched
// -m recent, whose probability is not known), sorted.
func outcomes(res ruleset.TraceResult) []string {
	probs := map[string]float64{}
	sticky := map[string]bool{}
	for _, p := range res.Paths {
		parts := []string{p.Verdict}
		if p.Verdict == ruleset.VerdictReject {
			parts = append(parts, p.RejectWith)
		}
		if p.DNAT.IsValid() {
			parts = append(parts, "dnat="+p.DNAT.String())
		} else if p.Verdict == ruleset.VerdictAccept && p.Local {
			parts = append(parts, "local")
		}
		if p.Masquerade {
			parts = append(parts, "masquerade")
		}
		key := strings.Join(parts, " ")
		if p.Sticky {
			sticky[key+" (affinity)"] = true
			continue
		}
		probs[key] += p.Probability
	}
	var out []string
	for k, pr := range probs {
		out = append(out, fmt.Sprintf("p=%.4f %s", pr, k))
	}
	for k := range sticky {
		out = append(out, "p=?      "+k)
	}
	slices.Sort(out)
	return out
}
