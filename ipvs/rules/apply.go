package rules

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
	return r.restore(missing, false)
}

// RestoreWithCanaries is Restore with the empty KUBE-PROXY-CANARY chains of
// mangle, nat and filter declared too: mangle's in a block of its own
// first, nat's and filter's in their tables' blocks, so filter stays the
// last block and a netfilter.TableRollback needs no undo for it.
func (r *Rules) RestoreWithCanaries(missing []netfilter.JumpRule) []byte {
	return r.restore(missing, true)
}

func (r *Rules) restore(missing []netfilter.JumpRule, canaries bool) []byte {
	var b strings.Builder
	if canaries {
		b.WriteString("*mangle\n:" + netfilter.CanaryChain + " - [0:0]\nCOMMIT\n")
	}
	chains := netfilter.IPVSChains()
	for _, table := range []string{"nat", "filter"} {
		b.WriteString("*" + table + "\n")
		for _, c := range chains[table] {
			b.WriteString(":" + c + " - [0:0]\n")
		}
		if canaries {
			b.WriteString(":" + netfilter.CanaryChain + " - [0:0]\n")
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

// Applier writes Rules through a netfilter.Restorer, in two steps a
// caller can tell apart: Read (iptables-save of nat and filter, to find the
// jump rules that are missing) and Write (one iptables-restore that
// inserts only those, so a sync never duplicates a jump and restores one
// someone deleted). IPVS-mode tables are small, so reading them whole on
// every write is cheap; the Proxier writes on full syncs and on partial
// syncs whose rules changed only. Write goes through a
// netfilter.TableRollback, with the tables Read found as the snapshot:
// when the filter block fails after the nat block committed, nat is
// rolled back.
type Applier struct {
	r     netfilter.Restorer
	apply *netfilter.TableRollback
}

// NewApplier returns an Applier over a Restorer of the proxier's family.
func NewApplier(r netfilter.Restorer) *Applier {
	return &Applier{r: r, apply: netfilter.NewTableRollback(r)}
}

// Tables is what Read found: nat and filter as iptables-save printed them,
// and the jump rules (netfilter.IPVSJumpRules) missing from them.
type Tables struct {
	saved   map[string][]byte
	Missing []netfilter.JumpRule
}

// Read saves nat and filter and lists the missing jumps. A jump is
// present when iptables-save prints exactly its SaveLine.
func (a *Applier) Read(ctx context.Context) (*Tables, error) {
	t := &Tables{saved: map[string][]byte{}}
	parsed := map[string]*ruleset.SavedTable{}
	for _, table := range []string{"nat", "filter"} {
		data, err := a.r.Save(ctx, table)
		if err != nil {
			return nil, fmt.Errorf("read %s table: %w", table, err)
		}
		t.saved[table] = data
		parsed[table] = ruleset.ParseSave(data)
	}
	for _, j := range netfilter.IPVSJumpRules() {
		if !parsed[j.Table].HasRule(j.SaveLine()) {
			t.Missing = append(t.Missing, j)
		}
	}
	return t, nil
}

// Write writes the rules and the jumps t lacks in one iptables-restore.
// The ipsets they match must exist (ipset.Syncer first).
func (a *Applier) Write(ctx context.Context, rules *Rules, t *Tables) error {
	return a.write(ctx, rules.Restore(t.Missing), t)
}

// WriteWithCanaries is Write with the empty KUBE-PROXY-CANARY chains of
// mangle, nat and filter in the same iptables-restore: full syncs
// (re)create them, and their disappearance tells the tamper monitor
// (netfilter.Monitor) that someone flushed the tables. Like Write it is
// all-or-nothing: nat and filter are known from Read, mangle's canary is
// listed by the rollback's snapshot.
func (a *Applier) WriteWithCanaries(ctx context.Context, rules *Rules, t *Tables) error {
	return a.write(ctx, rules.RestoreWithCanaries(t.Missing), t)
}

func (a *Applier) write(ctx context.Context, data []byte, t *Tables) error {
	known := netfilter.Known{Table: netfilter.KnownTables(t.saved)}
	if err := a.apply.RestoreKnown(ctx, data, known); err != nil {
		return fmt.Errorf("apply ipvs iptables rules: %w", err)
	}
	return nil
}

// Apply is Read then Write.
func (a *Applier) Apply(ctx context.Context, rules *Rules) error {
	t, err := a.Read(ctx)
	if err != nil {
		return err
	}
	return a.Write(ctx, rules, t)
}
