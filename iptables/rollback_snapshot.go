package iptables

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
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

// tableSnapshot is what a table held, for the chains the input touches.
type tableSnapshot struct {
	table   string
	touched map[string]bool
	// all is set when the input flushes or deletes every chain of the table.
	all   bool
	saved *savedChains
}

// snapshot reads each table the given blocks change, once.
func (t *TableRollback) snapshot(ctx context.Context, earlier []restoreBlock, known Known) ([]*tableSnapshot, error) {
	var snaps []*tableSnapshot
	byTable := map[string]*tableSnapshot{}
	for _, b := range earlier {
		s := byTable[b.table]
		if s == nil {
			s = &tableSnapshot{table: b.table, touched: map[string]bool{}}
			byTable[b.table] = s
			snaps = append(snaps, s)
		}
		s.all = touchedChains(b.text, s.touched) || s.all
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

// read fills s.saved from what the caller knows or, failing that, by
// listing each touched chain ("iptables -S CHAIN", ~2 ms: iptables-nft-save
// of any one table fetches the whole ruleset, 0.12 s at 1k services and
// minutes at 10k). A table the input touches everywhere is read with one
// Save: the input declares more than maxChainListings chains only in the
// first blocks of a restore into a nearly empty nat table (see
// moveInsertsToOwnBlock), where the ruleset is small (1k services into an
// empty namespace: 22k declared chains, 44 s of listings).
func (t *TableRollback) read(ctx context.Context, s *tableSnapshot, known Known) error {
	s.saved = newSavedChains()
	if known.Table != nil {
		if text, ok := known.Table(s.table); ok {
			s.saved.add(text)
			return nil
		}
	}
	var unknown []string
	for _, c := range slices.Sorted(maps.Keys(s.touched)) {
		if rules, ok := knownChain(known, s.table, c); ok {
			s.saved.addChain(c, rules)
		} else {
			unknown = append(unknown, c)
		}
	}
	lister, ok := t.inner.(ChainLister)
	switch {
	case len(unknown) == 0 && !s.all:
		return nil
	case !ok || s.all || len(unknown) > maxChainListings:
		data, err := t.inner.Save(ctx, s.table)
		if err != nil {
			return err
		}
		s.saved = newSavedChains()
		s.saved.add(string(data))
		return nil
	}
	return listChainsInto(ctx, lister, s.table, unknown, s.saved)
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
func listChainsInto(ctx context.Context, l ChainLister, table string, chains []string, saved *savedChains) error {
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
		saved.add(string(out[i]))
	}
	return nil
}
