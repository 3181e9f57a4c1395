package iptables

import (
	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// kernelState is what this family's tables hold, as far as a sync needs to
// know: the chains kproxy writes with what they hold, the jump rules that
// are missing, and per-service chains that may have gone stale. It is one
// type whatever its provenance; where each part came from (iptables-save
// of a whole table, single-chain listings, or the memory of the last
// successful sync) is decided by the read step (kernel_read.go) and shows
// here only as what can be compared.
type kernelState struct {
	tables map[string]*kernelTable
	// stale are per-service nat chains the tables hold, or may still hold,
	// that a rendering may no longer need: all those read from the kernel,
	// and those syncs that failed after their render dropped them left
	// behind. The diff deletes those the rendering does not use.
	stale []string
	// unwalked, with its lister, is a nat table known from listings alone,
	// whose stale chains readStale still has to find.
	unwalked *ruleset.SavedTable
	lister   netfilter.ChainLister
	// missingJumps are the jump rules into kproxy's chains (in
	// netfilter.IPTablesJumpRules order) that the built-in chains lack.
	missingJumps []missingJump
	// rememberedRules is set when the memory stands in for every chain,
	// rules as written included (a partial sync): rule-level edits and the
	// rollback snapshot may use them.
	rememberedRules bool
	// memoryStandsIn is set when a full sync could not read every chain it
	// compares and trusted the memory for per-service chains instead.
	memoryStandsIn bool
}

// kernelTable is what one table holds.
type kernelTable struct {
	// listed are the chains read from the kernel in this sync (every chain
	// of the table when whole), as the hash of their rules in
	// iptables-save form (savedRulesHashes).
	listed map[string]uint64
	whole  bool
	// save is the table's iptables-save output when it was read whole.
	save string
	// remembered stands in for chains that were not listed: what the last
	// successful sync wrote into them. Only per-service chains stand in
	// unless kernelState.rememberedRules is set.
	remembered map[string]chainState
	// count is how many chains the table holds: exact after a whole read,
	// otherwise at least what was listed or remembered; servicesRules, the
	// rules a listing found in KUBE-SERVICES, refines it (chainCount).
	count, servicesRules int
}

// missingJump is a jump rule the kernel lacks, and whether its target
// chain exists (KUBE-FIREWALL is kubelet's: created if missing, never
// flushed).
type missingJump struct {
	rule         netfilter.JumpRule
	targetExists bool
}

// kernelChain is what the kernel holds in one chain: either read now
// (listed, with the hash of its saved rules) or as kproxy rendered it
// (rendered hash, and the rule lines themselves when known).
type kernelChain struct {
	listed   bool
	saved    uint64
	rendered uint64
	text     []byte
}

// table returns the named table, nil when nothing is known of it.
func (ks *kernelState) table(name string) *kernelTable {
	return ks.tables[name]
}

// tableFor returns the named table, adding an empty one if needed.
func (ks *kernelState) tableFor(name string) *kernelTable {
	t := ks.tables[name]
	if t == nil {
		t = &kernelTable{}
		ks.tables[name] = t
	}
	return t
}

// chain looks a chain up: read from the kernel first, then remembered.
func (ks *kernelState) chain(t *kernelTable, name string) (kernelChain, bool) {
	if t == nil {
		return kernelChain{}, false
	}
	if h, ok := t.listed[name]; ok {
		return kernelChain{listed: true, saved: h}, true
	}
	if t.remembered == nil || (!ks.rememberedRules && !netfilter.IsServiceChainName(name)) {
		return kernelChain{}, false
	}
	s, ok := t.remembered[name]
	if !ok {
		return kernelChain{}, false
	}
	k := kernelChain{rendered: s.rendered}
	if ks.rememberedRules {
		k.text = s.text
	}
	return k, true
}

// readWhole reports whether the named table was read whole.
func (ks *kernelState) readWhole(name string) bool {
	t := ks.table(name)
	return t != nil && t.whole
}

// chainCount is how many chains a table holds, for deciding on the list
// prefix: exact after a whole read, remembered after a sync, and estimated
// from KUBE-SERVICES after a listing (declared chains per service), so
// that "-S", which prints the whole table, is never prefixed to a restore
// into a huge table.
func (t *kernelTable) chainCount(declared, services int) int {
	if t == nil {
		return 0
	}
	perService := declared / max(1, services)
	return max(t.count, t.servicesRules*max(1, perService))
}

// known tells the rollback snapshot what the kernel holds without asking
// it: the tables read whole, and on a partial sync the rules kproxy wrote
// into its top-level chains.
func (ks *kernelState) known() netfilter.Known {
	known := netfilter.Known{Table: func(table string) (string, bool) {
		if t := ks.table(table); t != nil && t.save != "" {
			return t.save, true
		}
		return "", false
	}}
	if ks.rememberedRules {
		known.Chain = ks.rememberedTopLevel
	}
	return known
}

// rememberedTopLevel is a top-level chain's rules as the last successful
// sync wrote them.
func (ks *kernelState) rememberedTopLevel(table, chain string) ([]byte, bool) {
	t := ks.table(table)
	if t == nil || netfilter.IsServiceChainName(chain) {
		return nil, false
	}
	s, ok := t.remembered[chain]
	return s.text, ok
}
