package netfilter

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// Known is what a caller of TableRollback knows the kernel holds right
// now; nil functions know nothing.
type Known struct {
	// Table returns a table's whole iptables-save output, just read.
	Table func(table string) (save string, ok bool)
	// Chain returns a chain's rules as restore lines ("-A CHAIN ...") when
	// the caller wrote the chain itself and knows it unchanged since.
	Chain func(table, chain string) (rules []byte, ok bool)
}

// KnownTables is a Known.Table answering from saves by table name.
func KnownTables(saves map[string][]byte) func(string) (string, bool) {
	return func(table string) (string, bool) {
		data, ok := saves[table]
		return string(data), ok
	}
}

// tableSnapshot is what a table held, for the chains the input's earlier
// blocks of it touch. Work that only a rollback needs (finding every
// touched chain of a 100k-chain block, parsing a whole-table save) is done
// only when the restore fails.
type tableSnapshot struct {
	table  string
	blocks [][]byte
	// saved holds listed or known chains; text, when set, is a whole-table
	// save, parsed into saved on demand.
	saved *ruleset.SavedTable
	text  string
}

// touched is every chain the blocks touch; all reports a statement that
// applies to every chain of the table.
func (s *tableSnapshot) touched() (chains map[string]bool, all bool) {
	chains = map[string]bool{}
	for _, b := range s.blocks {
		all = touchedChains(b, chains) || all
	}
	return chains, all
}

// chains returns what the table held, parsing a whole-table save if needed.
func (s *tableSnapshot) chains() *ruleset.SavedTable {
	if s.saved == nil {
		s.saved = ruleset.ParseSave([]byte(s.text))
	}
	return s.saved
}

// snapshot reads each table the given blocks change, once.
func (t *TableRollback) snapshot(ctx context.Context, earlier []restoreBlock, known Known) ([]*tableSnapshot, error) {
	var snaps []*tableSnapshot
	byTable := map[string]*tableSnapshot{}
	for _, b := range earlier {
		s := byTable[b.table]
		if s == nil {
			s = &tableSnapshot{table: b.table}
			byTable[b.table] = s
			snaps = append(snaps, s)
		}
		s.blocks = append(s.blocks, b.text)
	}
	for _, s := range snaps {
		if err := t.read(ctx, s, known); err != nil {
			return nil, fmt.Errorf("snapshot %s table: %w", s.table, err)
		}
	}
	return snaps, nil
}

// maxChainListings is the number of touched chains above which a table is
// read with one Save rather than chain by chain.
const maxChainListings = 32

// read takes the table from what the caller knows or, failing that, lists
// each touched chain ("iptables -S CHAIN", ~2 ms: iptables-nft-save of any
// one table fetches the whole ruleset, 0.12 s at 1k services and minutes at
// 10k). A table the input touches everywhere is read with one Save: more
// than maxChainListings chains are declared only in the first block of a
// restore into a nearly empty nat table (see moveInsertsToOwnBlock), where
// the ruleset is small (1k services into an empty namespace: 22k declared
// chains, 44 s of listings).
func (t *TableRollback) read(ctx context.Context, s *tableSnapshot, known Known) error {
	if known.Table != nil {
		if text, ok := known.Table(s.table); ok {
			s.text = text
			return nil
		}
	}
	lister, canList := t.inner.(ChainLister)
	if canList && declarations(s.blocks) <= maxChainListings {
		touched, all := s.touched()
		if !all && len(touched) <= maxChainListings {
			return t.readChains(ctx, lister, s, touched, known)
		}
	}
	data, err := t.inner.Save(ctx, s.table)
	if err != nil {
		return err
	}
	s.text = string(data)
	return nil
}

// readChains fills s.saved with the touched chains: known ones from the
// caller, the others listed.
func (t *TableRollback) readChains(ctx context.Context, l ChainLister, s *tableSnapshot, touched map[string]bool, known Known) error {
	s.saved = ruleset.NewSavedTable()
	var unknown []string
	for _, c := range slices.Sorted(maps.Keys(touched)) {
		if rules, ok := knownChain(known, s.table, c); ok {
			// A chain the caller wrote is a user chain: list it so.
			s.saved.Add(append([]byte("-N "+c+"\n"), rules...))
		} else {
			unknown = append(unknown, c)
		}
	}
	return listChainsInto(ctx, l, s.table, unknown, s.saved)
}

// declarations counts the ":CHAIN" lines of blocks (after the first line).
func declarations(blocks [][]byte) int {
	n := 0
	for _, b := range blocks {
		n += bytes.Count(b, []byte("\n:"))
	}
	return n
}

func knownChain(known Known, table, chain string) ([]byte, bool) {
	if known.Chain == nil {
		return nil, false
	}
	return known.Chain(table, chain)
}

// listingConcurrency bounds the "iptables -S" processes run at once.
const listingConcurrency = 4

// listChainsInto lists chains concurrently and adds them to saved.
func listChainsInto(ctx context.Context, l ChainLister, table string, chains []string, saved *ruleset.SavedTable) error {
	out := make([][]byte, len(chains))
	errs := make([]error, len(chains))
	sem := make(chan struct{}, listingConcurrency)
	var wg sync.WaitGroup
	for i, c := range chains {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i], errs[i] = l.ListChain(ctx, table, c)
		}()
	}
	wg.Wait()
	for i := range chains {
		if errs[i] != nil {
			return fmt.Errorf("list chain %s: %w", chains[i], errs[i])
		}
		saved.Add(out[i])
	}
	return nil
}
