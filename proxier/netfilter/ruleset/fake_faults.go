package ruleset

import "fmt"

// Faults and counters for tests of what runs on top of the Fake (the
// rollback of multi-table restores, the proxiers' reads of the kernel).

// blockFault fails the nth block of one table in one Restore.
type blockFault struct {
	table     string
	nth, seen int
}

// FailNextBlock makes the next Restore fail at the nth (1-based) block of
// table, as the kernel refusing a rule in it: the blocks before it stay
// committed and the rest is not run, as with iptables-restore. An input
// without that block fails as a whole, so a test cannot miss its fault.
func (f *Fake) FailNextBlock(table string, nth int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failBlock = &blockFault{table: table, nth: max(nth, 1)}
}

// takeBlockFault disarms the armed fault for this input (nil if none).
func (f *Fake) takeBlockFault(s *Script) (*blockFault, error) {
	fault := f.failBlock
	f.failBlock = nil
	if fault == nil {
		return nil, nil
	}
	n := 0
	for i := range s.Tables {
		if s.Tables[i].Name == fault.table {
			n++
		}
	}
	if n < fault.nth {
		return nil, fmt.Errorf("no %s block %d to fail", fault.table, fault.nth)
	}
	return fault, nil
}

// hits counts b's blocks and reports whether it is the one to fail.
func (fault *blockFault) hits(b *TableBlock) bool {
	if fault == nil || b.Name != fault.table {
		return false
	}
	fault.seen++
	return fault.seen == fault.nth
}

func (fault *blockFault) err(b *TableBlock) error {
	return &ParseError{Line: b.Line, Err: fmt.Errorf("table %s: injected failure", b.Name)}
}

// FailListings makes every ListChain return err until FailListings(nil).
func (f *Fake) FailListings(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failList = err
}

// Reads are the numbers of Save and ListChain calls so far, failed ones
// included: what a caller read of the kernel.
func (f *Fake) Reads() (saves, listings int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.saves, f.lists
}

func (f *Fake) countSave() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.saves++
}

// countListing counts a ListChain call and returns the armed listing failure.
func (f *Fake) countListing() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	return f.failList
}
