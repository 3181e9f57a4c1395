package iptables

import (
	"bytes"
	"context"
	"fmt"
	"slices"
)

// Cleanup removes what kproxy or upstream kube-proxy in iptables mode
// installed in one family's tables, with one Save per table and one Restore
// (all or nothing, through TableRollback):
// the jump rules from built-in chains, KUBE-SERVICES, KUBE-NODEPORTS,
// KUBE-POSTROUTING, KUBE-EXTERNAL-SERVICES, KUBE-FORWARD, KUBE-PROXY-FIREWALL,
// every KUBE-SVC/SVL/SEP/FW/EXT chain and the canaries. KUBE-MARK-MASQ and
// KUBE-FIREWALL are shared with kubelet and stay, as do other software's
// rules; a chain of ours that other software still jumps to is left in place
// (with everything it references) rather than breaking that software.
func Cleanup(ctx context.Context, r Restorer) error {
	var input bytes.Buffer
	// nat last: TableRollback snapshots the tables before the last one.
	for _, table := range []string{"filter", "mangle", "nat"} {
		saved, err := saveTable(ctx, r, table)
		if err != nil {
			if table == "mangle" {
				continue // only the canary lives there
			}
			return fmt.Errorf("cleanup: %w", err)
		}
		writeTableCleanup(&input, table, saved)
	}
	if input.Len() == 0 {
		return nil
	}
	if err := NewTableRollback(r).Restore(ctx, input.Bytes()); err != nil {
		return fmt.Errorf("cleanup: remove kube-proxy rules: %w", err)
	}
	return nil
}

// ownedChain reports whether cleanup removes chain from table.
func ownedChain(table, chain string) bool {
	switch chain {
	case CanaryChain:
		return true
	case ServicesChain, NodePortsChain:
		return table == "filter" || table == "nat"
	case ExternalServicesChain, ForwardChain, ProxyFirewallChain:
		return table == "filter"
	case PostroutingChain:
		return table == "nat"
	}
	return table == "nat" && IsServiceChainName(chain)
}

// writeTableCleanup writes one table's block: flush our chains, delete the
// jumps to them from built-in chains, then delete the chains.
func writeTableCleanup(b *bytes.Buffer, table string, saved *savedTable) {
	doomed := map[string]bool{}
	for c := range saved.chains {
		if _, builtin := saved.builtins[c]; !builtin && ownedChain(table, c) {
			doomed[c] = true
		}
	}
	spareReferencedChains(saved, doomed)
	var jumps []string
	for _, r := range saved.rules {
		if _, builtin := saved.builtins[r.chain]; builtin && doomed[r.target] {
			jumps = append(jumps, "-D"+r.line[2:])
		}
	}
	if len(doomed) == 0 && len(jumps) == 0 {
		return
	}
	chains := make([]string, 0, len(doomed))
	for c := range doomed {
		chains = append(chains, c)
	}
	slices.Sort(chains)
	b.WriteString("*" + table + "\n")
	for _, c := range chains {
		writeChainLine(b, c)
	}
	for _, j := range jumps {
		b.WriteString(j + "\n")
	}
	for _, c := range chains {
		b.WriteString("-X " + c + "\n")
	}
	b.WriteString("COMMIT\n")
}

// spareReferencedChains keeps chains that a surviving user chain jumps to,
// and everything those reference, until nothing changes.
func spareReferencedChains(saved *savedTable, doomed map[string]bool) {
	for changed := true; changed; {
		changed = false
		for _, r := range saved.rules {
			if _, builtin := saved.builtins[r.chain]; builtin || doomed[r.chain] || !doomed[r.target] {
				continue
			}
			delete(doomed, r.target)
			changed = true
		}
	}
}
