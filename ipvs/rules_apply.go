package ipvs

import (
	"context"
	"fmt"
	"strings"

	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// Restore is the iptables-restore input (for --noflush) of the rules: per
// table, the declarations of netfilter.IPVSChains (which flush them), an
// insertion of every jump of missing, the rules, COMMIT.
func (r *Rules) Restore(missing []netfilter.JumpRule) []byte {
	var b strings.Builder
	chains := netfilter.IPVSChains()
	for _, table := range []string{"nat", "filter"} {
		b.WriteString("*" + table + "\n")
		for _, c := range chains[table] {
			b.WriteString(":" + c + " - [0:0]\n")
		}
		for _, j := range missing {
			if j.Table == table {
				b.WriteString(j.InsertLine() + "\n")
			}
		}
		rules := r.NAT
		if table == "filter" {
			rules = r.Filter
		}
		for _, l := range rules {
			b.WriteString(l + "\n")
		}
		b.WriteString("COMMIT\n")
	}
	return []byte(b.String())
}

// RulesApplier writes Rules through a netfilter.Restorer. IPVS-mode tables
// are small, so it reads nat and filter with Save on every apply to find
// the jump rules that are missing, and inserts only those: a sync never
// duplicates a jump and restores one someone deleted. (The Proxier calls
// it on full syncs and on partial syncs whose rules changed only.) The
// restore goes through an netfilter.TableRollback, with the tables it has
// just read as the snapshot: when the filter block fails after the nat
// block committed, nat is rolled back.
type RulesApplier struct {
	r     netfilter.Restorer
	apply *netfilter.TableRollback
}

// NewRulesApplier returns a RulesApplier over a Restorer of the proxier's family.
func NewRulesApplier(r netfilter.Restorer) *RulesApplier {
	return &RulesApplier{r: r, apply: netfilter.NewTableRollback(r)}
}

// Apply writes the rules in one iptables-restore. The ipsets they match
// must exist (SetSyncer.Sync first).
func (a *RulesApplier) Apply(ctx context.Context, rules *Rules) error {
	missing, saved, err := a.missingJumps(ctx)
	if err != nil {
		return err
	}
	if err := a.apply.RestoreKnown(ctx, rules.Restore(missing), netfilter.Known{Table: netfilter.KnownTables(saved)}); err != nil {
		return fmt.Errorf("apply ipvs iptables rules: %w", err)
	}
	return nil
}

// MissingJumps lists the netfilter.IPVSJumpRules not present in the kernel's tables.
func (a *RulesApplier) MissingJumps(ctx context.Context) ([]netfilter.JumpRule, error) {
	missing, _, err := a.missingJumps(ctx)
	return missing, err
}

// missingJumps also returns the nat and filter tables it read. A jump is
// present when iptables-save prints exactly its SaveLine.
func (a *RulesApplier) missingJumps(ctx context.Context) ([]netfilter.JumpRule, map[string][]byte, error) {
	raw := map[string][]byte{}
	saved := map[string]*ruleset.SavedTable{}
	for _, table := range []string{"nat", "filter"} {
		data, err := a.r.Save(ctx, table)
		if err != nil {
			return nil, nil, fmt.Errorf("read %s table: %w", table, err)
		}
		raw[table] = data
		saved[table] = ruleset.ParseSave(data)
	}
	var missing []netfilter.JumpRule
	for _, j := range netfilter.IPVSJumpRules() {
		if !saved[j.Table].HasRule(j.SaveLine()) {
			missing = append(missing, j)
		}
	}
	return missing, raw, nil
}
