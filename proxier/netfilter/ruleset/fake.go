package ruleset

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	v1 "k8s.io/api/core/v1"
)

// FakeOptions configures a Fake.
type FakeOptions struct {
	// Family is the address family of every address the fake accepts
	// (default IPv4).
	Family v1.IPFamily
}

// Fake is an in-memory iptables-restore / iptables-save for one address
// family. It applies input with --noflush semantics and rejects what the
// kernel rejects. It is safe for concurrent use.
type Fake struct {
	opts FakeOptions

	mu       sync.Mutex
	tables   map[string]*tableState
	failNext error
	failSave error
	// failBlock, failList, saves and lists: see fake_faults.go.
	failBlock *blockFault
	failList  error
	restores  int
	saves     int
	lists     int
	last      []byte
}

// NewFake returns an empty fake: every known table has only its built-in
// chains with policy ACCEPT.
func NewFake(opts FakeOptions) *Fake {
	if opts.Family == "" {
		opts.Family = v1.IPv4Protocol
	}
	return &Fake{opts: opts, tables: map[string]*tableState{}}
}

// Family is the fake's address family.
func (f *Fake) Family() v1.IPFamily { return f.opts.Family }

// Restore applies iptables-restore input with --noflush semantics. Like
// iptables-restore (nft and legacy, 1.8.9), each "*table ... COMMIT" block
// commits on its own, in input order: a failing block changes nothing, but
// the blocks committed before it stay applied and those after it are not
// run.
func (f *Fake) Restore(ctx context.Context, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restores++
	f.last = bytes.Clone(data)
	if err := f.failNext; err != nil {
		f.failNext = nil
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	script, err := ParseRestore(data, f.opts.Family)
	if err != nil {
		return fmt.Errorf("iptables-restore: %w", err)
	}
	fault, err := f.takeBlockFault(script)
	if err != nil {
		return fmt.Errorf("iptables-restore: %w", err)
	}
	for i := range script.Tables {
		if fault.hits(&script.Tables[i]) {
			return fmt.Errorf("iptables-restore: %w", fault.err(&script.Tables[i]))
		}
		work := map[string]*txnTable{}
		if err := f.applyBlock(work, &script.Tables[i]); err != nil {
			return fmt.Errorf("iptables-restore: %w", err)
		}
		f.commit(work)
	}
	return nil
}

func (f *Fake) applyBlock(work map[string]*txnTable, b *TableBlock) error {
	t := work[b.Name]
	if t == nil {
		t = beginTxnTable(f.tables[b.Name], b.Name, f.opts.Family)
		work[b.Name] = t
	}
	for i := range b.Statements {
		st := &b.Statements[i]
		if err := t.apply(st); err != nil {
			return &ParseError{Line: st.Line, Err: err}
		}
	}
	for _, check := range []func() error{t.checkHooks, t.checkLoops} {
		if err := check(); err != nil {
			return &ParseError{Line: b.Line, Err: fmt.Errorf("table %s: %w", b.Name, err)}
		}
	}
	return nil
}

func (f *Fake) commit(work map[string]*txnTable) {
	for name, t := range work {
		f.tables[name] = t.tableState
	}
}

// Save returns the table as iptables-save prints it (without the dated
// header comments): built-in chains, then user chains by name, then the rules
// of each chain in that order, in the kernel's display form.
func (f *Fake) Save(ctx context.Context, table string) ([]byte, error) {
	f.countSave()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !KnownTable(table) {
		return nil, fmt.Errorf("iptables-save: table %q does not exist", table)
	}
	f.mu.Lock()
	if err := f.failSave; err != nil {
		f.mu.Unlock()
		return nil, err
	}
	t := f.tables[table]
	if t == nil {
		t = newTableState(table)
	}
	exported := t.export()
	f.mu.Unlock()
	return []byte(FormatSave(exported)), nil
}

// FormatSave renders a table in iptables-save format (no header comments).
func FormatSave(t *Table) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%s\n", t.Name)
	for _, c := range t.Chains {
		fmt.Fprintf(&b, ":%s %s [0:0]\n", c.Name, c.Policy)
	}
	for _, c := range t.Chains {
		for i := range c.Rules {
			fmt.Fprintf(&b, "-A %s", c.Name)
			for _, a := range c.Rules[i].SaveArgs() {
				b.WriteByte(' ')
				b.WriteString(a)
			}
			b.WriteByte('\n')
		}
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// FailSaves makes every Save return err until FailSaves(nil), as
// iptables-save does on a table too large for it.
func (f *Fake) FailSaves(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failSave = err
}

// ListChain prints one chain as "iptables -S CHAIN" does: "-P CHAIN POLICY"
// or "-N CHAIN", then its rules; (nil, nil) when the chain does not exist.
func (f *Fake) ListChain(ctx context.Context, table, chain string) ([]byte, error) {
	if err := f.countListing(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t := f.Table(table)
	if t == nil {
		return nil, fmt.Errorf("iptables: table %q does not exist", table)
	}
	c := t.Chain(chain)
	if c == nil {
		return nil, nil
	}
	var b strings.Builder
	if c.Policy == PolicyNone {
		fmt.Fprintf(&b, "-N %s\n", c.Name)
	} else {
		fmt.Fprintf(&b, "-P %s %s\n", c.Name, c.Policy)
	}
	for i := range c.Rules {
		b.WriteString("-A " + c.Name)
		for _, a := range c.Rules[i].SaveArgs() {
			b.WriteString(" " + a)
		}
		b.WriteByte('\n')
	}
	return []byte(b.String()), nil
}

// FailNextRestore makes the next Restore return err without changing state.
func (f *Fake) FailNextRestore(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext = err
}

// RestoreCount is the number of Restore calls so far, failed ones included.
func (f *Fake) RestoreCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.restores
}

// LastRestore returns a copy of the input of the last Restore call.
func (f *Fake) LastRestore() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return bytes.Clone(f.last)
}

// Tables returns a copy of every table a restore has touched, by name.
// Rules are shared with the fake and must not be modified.
func (f *Fake) Tables() map[string]*Table {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]*Table, len(f.tables))
	for _, name := range slices.Sorted(maps.Keys(f.tables)) {
		out[name] = f.tables[name].export()
	}
	return out
}

// Table returns a copy of one table (only built-in chains if untouched), or
// nil for an unknown table name.
func (f *Fake) Table(name string) *Table {
	if !KnownTable(name) {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if t := f.tables[name]; t != nil {
		return t.export()
	}
	return newTable(name)
}

// ParseTables parses iptables-save output (or a full iptables-restore input)
// into tables, applying it to an empty state as a restore would.
func ParseTables(data []byte, family v1.IPFamily) (map[string]*Table, error) {
	f := NewFake(FakeOptions{Family: family})
	if err := f.Restore(context.Background(), data); err != nil {
		return nil, err
	}
	return f.Tables(), nil
}
