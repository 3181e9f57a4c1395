package netfilter

import (
	"context"
	"errors"
	"fmt"

	"sigs.k8s.io/knftables"
)

// NFTablesTable is the name of nftables mode's tables, upstream's `table ip
// kube-proxy` and `table ip6 kube-proxy`: every object of that mode lives
// in them, so deleting them removes all of it and nothing else.
const NFTablesTable = "kube-proxy"

// NFTablesFamilies are the families of nftables mode's tables, IPv4 first.
func NFTablesFamilies() []knftables.Family {
	return []knftables.Family{knftables.IPv4Family, knftables.IPv6Family}
}

// CleanupNFTablesMode deletes nftables mode's tables (NFTablesTable in each
// of NFTablesFamilies), kproxy's or upstream kube-proxy's alike, as
// upstream's nftables CleanupLeftovers does. nft must have no default
// family and table (knftables.New("", ""), or knftables.NewFake("", "") in
// tests): each table is named in full, one transaction per table, so a
// missing table is not an error and never stops the other one from going,
// and no other table can be touched. It returns how many tables it deleted
// and, joined, the errors other than "not found".
func CleanupNFTablesMode(ctx context.Context, nft knftables.Interface) (int, error) {
	removed := 0
	var errs []error
	for _, family := range NFTablesFamilies() {
		tx := nft.NewTransaction()
		tx.Delete(&knftables.Table{Family: family, Name: NFTablesTable})
		err := nft.Run(ctx, tx)
		switch {
		case err == nil:
			removed++
		case knftables.IsNotFound(err):
		default:
			errs = append(errs, fmt.Errorf("cleanup: delete table %s %s: %w", family, NFTablesTable, err))
		}
	}
	return removed, errors.Join(errs...)
}
