package netfilter

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// Cleanup of kproxy's and upstream kube-proxy's rules. Every mode's cleanup
// is the same algorithm over the same parser (ruleset.ParseSave): read each
// table once, pick the chains the mode owns, flush them, delete every jump
// to them from a built-in chain, delete them, all in one restore that goes
// through TableRollback (all or nothing). Only the owned chains differ.
// Other software's chains and rules stay, and a chain of ours that another
// program's chain still jumps to is left in place, with everything it
// references, rather than breaking that program (or failing the restore on
// a referenced chain).

// chainOwner says which chains one mode's cleanup removes.
type chainOwner struct {
	// what names the rules in errors.
	what string
	// tables are read and written in this order: nat last, as the
	// backends write it (TableRollback snapshots all but the last table).
	tables []string
	owns   func(table, chain string) bool
}

// CleanupIPTablesMode removes what kproxy or upstream kube-proxy in
// iptables mode installed in one family's tables: the jump rules from
// built-in chains, KUBE-SERVICES, KUBE-NODEPORTS, KUBE-POSTROUTING,
// KUBE-EXTERNAL-SERVICES, KUBE-FORWARD, KUBE-PROXY-FIREWALL, every
// KUBE-SVC/SVL/SEP/FW/EXT chain and the canaries. KUBE-MARK-MASQ and
// KUBE-FIREWALL are shared with kubelet and stay. It returns how many
// chains it deleted.
func CleanupIPTablesMode(ctx context.Context, r Restorer) (int, error) {
	return removeOwnedChains(ctx, r, chainOwner{what: "kube-proxy rules",
		tables: []string{"filter", "mangle", "nat"}, owns: ownedByIPTablesMode})
}

// CleanupIPVSMode removes IPVS mode's chains (IPVSChains) from nat and
// filter, as upstream's IPVS cleanup does, KUBE-MARK-MASQ included (unless
// a surviving chain, such as an iptables-mode KUBE-SEP-*, still jumps to
// it). It returns how many chains it deleted.
func CleanupIPVSMode(ctx context.Context, r Restorer) (int, error) {
	chains := IPVSChains()
	return removeOwnedChains(ctx, r, chainOwner{what: "IPVS-mode iptables rules",
		tables: []string{"filter", "nat"}, owns: func(table, chain string) bool {
			return slices.Contains(chains[table], chain)
		}})
}

// ownedByIPTablesMode reports whether iptables mode's cleanup removes chain from table.
func ownedByIPTablesMode(table, chain string) bool {
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

// removeOwnedChains reads each table (mangle, which holds only the canary,
// may be unreadable), writes one restore for all of them, and applies it.
func removeOwnedChains(ctx context.Context, r Restorer, owner chainOwner) (int, error) {
	var input bytes.Buffer
	saves := map[string][]byte{}
	removed := 0
	for _, table := range owner.tables {
		data, err := r.Save(ctx, table)
		if err != nil {
			if table == "mangle" {
				continue
			}
			return 0, fmt.Errorf("cleanup: read %s table: %w", table, err)
		}
		saves[table] = data
		removed += writeTableCleanup(&input, table, ruleset.ParseSave(data), owner.owns)
	}
	if input.Len() == 0 {
		return 0, nil
	}
	known := Known{Table: KnownTables(saves)}
	if err := NewTableRollback(r).RestoreKnown(ctx, input.Bytes(), known); err != nil {
		return 0, fmt.Errorf("cleanup: remove %s: %w", owner.what, err)
	}
	return removed, nil
}

// writeTableCleanup writes one table's block (nothing when it holds none of
// the owned chains): flush the chains, delete the jumps to them from
// built-in chains, then delete the chains. It returns how many it deletes.
func writeTableCleanup(b *bytes.Buffer, table string, saved *ruleset.SavedTable, owns func(table, chain string) bool) int {
	doomed := map[string]bool{}
	for c := range saved.Chains {
		if !saved.BuiltIn(c) && owns(table, c) {
			doomed[c] = true
		}
	}
	spareReferencedChains(saved, doomed)
	if len(doomed) == 0 {
		return 0
	}
	chains := slices.Sorted(maps.Keys(doomed))
	b.WriteString("*" + table + "\n")
	for _, c := range chains {
		writeChainDeclaration(b, c)
	}
	for _, r := range saved.Rules {
		if saved.BuiltIn(r.Chain) && doomed[r.Target] {
			b.WriteString("-D" + r.Line[2:] + "\n")
		}
	}
	for _, c := range chains {
		b.WriteString("-X " + c + "\n")
	}
	b.WriteString("COMMIT\n")
	return len(chains)
}

// spareReferencedChains keeps chains that a surviving user chain jumps to,
// and everything those reference, until nothing changes.
func spareReferencedChains(saved *ruleset.SavedTable, doomed map[string]bool) {
	for changed := true; changed; {
		changed = false
		for _, r := range saved.Rules {
			if saved.BuiltIn(r.Chain) || doomed[r.Chain] || !doomed[r.Target] {
				continue
			}
			delete(doomed, r.Target)
			changed = true
		}
	}
}
