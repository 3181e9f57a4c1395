package ruleset

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	v1 "k8s.io/api/core/v1"
)

// tableState is the fake's live form of a table: chains by name and, per
// chain, how many rules jump to it (the kernel refuses to delete a chain
// that is still referenced).
type tableState struct {
	name   string
	chains map[string]*Chain
	refs   map[string]int
}

func newTableState(name string) *tableState {
	t := &tableState{name: name, chains: map[string]*Chain{}, refs: map[string]int{}}
	for _, c := range builtinChains[name] {
		t.chains[c] = &Chain{Name: c, Policy: "ACCEPT"}
	}
	return t
}

// export builds the public, sorted form of the table.
func (t *tableState) export() *Table {
	out := &Table{Name: t.name}
	for _, c := range t.chains {
		out.Chains = append(out.Chains, c.clone())
	}
	sortChains(t.name, out.Chains)
	return out
}

// txnTable is a copy-on-write working copy of one table inside a restore.
type txnTable struct {
	*tableState
	family v1.IPFamily
	owned  map[*Chain]bool
}

func beginTxnTable(base *tableState, name string, family v1.IPFamily) *txnTable {
	if base == nil {
		base = newTableState(name)
	}
	work := &tableState{name: name, chains: maps.Clone(base.chains), refs: maps.Clone(base.refs)}
	return &txnTable{tableState: work, family: family, owned: map[*Chain]bool{}}
}

// mutable returns a chain this transaction may modify, copying it first.
func (t *txnTable) mutable(name string) *Chain {
	c := t.chains[name]
	if c == nil || t.owned[c] {
		return c
	}
	c = c.clone()
	t.chains[name] = c
	t.owned[c] = true
	return c
}

func (t *txnTable) existing(name string) (*Chain, error) {
	if name == "" || t.chains[name] == nil {
		return nil, fmt.Errorf("chain %q does not exist: No chain/target/match by that name", name)
	}
	return t.mutable(name), nil
}

func (t *txnTable) apply(st *Statement) error {
	switch st.Op {
	case OpDeclare:
		return t.declare(st.Chain, st.Policy)
	case OpAppend, OpInsert:
		return t.addRule(st)
	case OpDelete:
		return t.deleteRule(st)
	case OpFlush:
		return t.flush(st.Chain)
	case OpNewChain:
		if t.chains[st.Chain] != nil {
			return fmt.Errorf("chain %q already exists", st.Chain)
		}
		t.createChain(st.Chain)
		return nil
	case OpDeleteChain:
		return t.deleteChains(st.Chain)
	case OpList:
		if st.Chain != "" {
			_, err := t.existing(st.Chain)
			return err
		}
		return nil
	case OpPolicy:
		if !isBuiltin(t.name, st.Chain) {
			return fmt.Errorf("bad built-in chain name %q", st.Chain)
		}
		t.mutable(st.Chain).Policy = st.Policy
		return nil
	}
	return fmt.Errorf("unknown statement %d", st.Op)
}

func (t *txnTable) createChain(name string) {
	c := &Chain{Name: name, Policy: PolicyNone}
	t.chains[name] = c
	t.owned[c] = true
}

// declare implements ":CHAIN POLICY" under --noflush: a user chain is
// created or flushed, a built-in chain only gets its policy.
func (t *txnTable) declare(name, policy string) error {
	if isBuiltin(t.name, name) {
		if policy != PolicyNone {
			t.mutable(name).Policy = policy
		}
		return nil
	}
	if policy != PolicyNone {
		return fmt.Errorf("bad built-in chain name %q: a user chain takes policy %q", name, PolicyNone)
	}
	if t.chains[name] == nil {
		t.createChain(name)
		return nil
	}
	return t.flush(name)
}

func (t *txnTable) flush(name string) error {
	names := []string{name}
	if name == "" {
		names = slices.Collect(maps.Keys(t.chains))
	}
	for _, n := range names {
		c, err := t.existing(n)
		if err != nil {
			return err
		}
		for i := range c.Rules {
			t.unref(&c.Rules[i])
		}
		c.Rules = nil
	}
	return nil
}

func (t *txnTable) addRule(st *Statement) error {
	c, err := t.existing(st.Chain)
	if err != nil {
		return err
	}
	if err := t.checkRule(st.Rule); err != nil {
		return err
	}
	if st.Op == OpAppend {
		c.Rules = append(c.Rules, *st.Rule)
	} else {
		if st.Position > len(c.Rules)+1 {
			return fmt.Errorf("index of insertion too big: %d", st.Position)
		}
		c.Rules = slices.Insert(c.Rules, st.Position-1, *st.Rule)
	}
	if j, ok := st.Rule.Target.(*JumpTarget); ok {
		t.refs[j.Chain]++
	}
	return nil
}

// checkRule rejects rules the kernel refuses in this table.
func (t *txnTable) checkRule(r *Rule) error {
	if r.Family != t.family {
		return fmt.Errorf("rule is for %s, table is %s", r.Family, t.family)
	}
	switch tg := r.Target.(type) {
	case *JumpTarget:
		if isBuiltin(t.name, tg.Chain) || t.chains[tg.Chain] == nil {
			return fmt.Errorf("chain %q does not exist", tg.Chain)
		}
	case *DNATTarget, *MasqueradeTarget:
		if t.name != "nat" {
			return fmt.Errorf("target %s is only valid in the nat table", tg.Name())
		}
	case *RejectTarget:
		if t.name != "filter" && t.name != "mangle" {
			return fmt.Errorf("target REJECT is not valid in table %s", t.name)
		}
	}
	return nil
}

func (t *txnTable) unref(r *Rule) {
	if j, ok := r.Target.(*JumpTarget); ok {
		if t.refs[j.Chain]--; t.refs[j.Chain] <= 0 {
			delete(t.refs, j.Chain)
		}
	}
}

func (t *txnTable) deleteRule(st *Statement) error {
	c, err := t.existing(st.Chain)
	if err != nil {
		return err
	}
	idx := st.Position - 1
	if st.Rule == nil {
		if idx >= len(c.Rules) {
			return fmt.Errorf("index of deletion too big: %d", st.Position)
		}
	} else {
		want := st.Rule.SaveLine()
		idx = slices.IndexFunc(c.Rules, func(r Rule) bool { return r.SaveLine() == want })
		if idx < 0 {
			return errors.New("bad rule (does a matching rule exist in that chain?)")
		}
	}
	t.unref(&c.Rules[idx])
	c.Rules = slices.Delete(c.Rules, idx, idx+1)
	return nil
}

func (t *txnTable) deleteChains(name string) error {
	if name == "" {
		for n, c := range t.chains {
			if !c.BuiltIn() {
				if err := t.deleteChain(n); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return t.deleteChain(name)
}

func (t *txnTable) deleteChain(name string) error {
	c := t.chains[name]
	switch {
	case c == nil:
		return fmt.Errorf("chain %q does not exist: No chain/target/match by that name", name)
	case c.BuiltIn():
		return fmt.Errorf("cannot delete built-in chain %q", name)
	case t.refs[name] > 0:
		return fmt.Errorf("chain %q is still referenced by %d rule(s): Device or resource busy", name, t.refs[name])
	case len(c.Rules) > 0:
		return fmt.Errorf("chain %q is not empty: Device or resource busy", name)
	}
	delete(t.chains, name)
	return nil
}

// hookRestrictions lists, per nat target, the built-in chains it may be
// reached from.
var hookRestrictions = map[string][]string{
	"DNAT":       {"PREROUTING", "OUTPUT"},
	"MASQUERADE": {"POSTROUTING"},
}

// checkHooks rejects a nat target reachable from a hook where the kernel
// does not allow it (DNAT in POSTROUTING, MASQUERADE in PREROUTING...).
func (t *txnTable) checkHooks() error {
	if t.name != "nat" {
		return nil
	}
	for _, hook := range builtinChains[t.name] {
		seen := map[string]bool{hook: true}
		queue := []string{hook}
		for len(queue) > 0 {
			c := t.chains[queue[0]]
			queue = queue[1:]
			for _, r := range c.Rules {
				name := r.TargetName()
				if allowed, ok := hookRestrictions[name]; ok && !slices.Contains(allowed, hook) {
					return fmt.Errorf("target %s in chain %s is reachable from %s: Invalid argument", name, c.Name, hook)
				}
				if j, ok := r.Target.(*JumpTarget); ok && !seen[j.Chain] {
					seen[j.Chain] = true
					queue = append(queue, j.Chain)
				}
			}
		}
	}
	return nil
}

// checkLoops rejects a jump cycle reachable from a built-in chain, which the
// kernel refuses with ELOOP ("Too many links"). Unreachable cycles are
// accepted, as by the kernel.
func (t *txnTable) checkLoops() error {
	const (
		onStack = 1
		done    = 2
	)
	state := map[string]int{}
	var visit func(name string) error
	visit = func(name string) error {
		state[name] = onStack
		for _, r := range t.chains[name].Rules {
			j, ok := r.Target.(*JumpTarget)
			if !ok {
				continue
			}
			switch state[j.Chain] {
			case onStack:
				return fmt.Errorf("jump from %s to %s closes a loop: Too many links", name, j.Chain)
			case 0:
				if err := visit(j.Chain); err != nil {
					return err
				}
			}
		}
		state[name] = done
		return nil
	}
	for _, hook := range builtinChains[t.name] {
		if err := visit(hook); err != nil {
			return err
		}
	}
	return nil
}
