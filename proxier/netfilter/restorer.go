package netfilter

import "context"

// Restorer is the iptables kernel seam of every backend: one address
// family's iptables-restore and iptables-save. The real implementation runs
// the binaries (xtables); the fake (ruleset) keeps tables in memory and
// rejects what the kernel would reject.
type Restorer interface {
	// Restore applies iptables-restore input with --noflush semantics: a
	// declared ":CHAIN - [0:0]" is created or flushed, undeclared chains are
	// left alone. Each "*table ... COMMIT" block is atomic, but the blocks
	// commit one by one (nft and legacy alike): after a failure, earlier
	// tables are already applied. The backends therefore restore through
	// TableRollback, which undoes them.
	Restore(ctx context.Context, data []byte) error
	// Save returns iptables-save output for one table ("filter", "nat", ...).
	Save(ctx context.Context, table string) ([]byte, error)
}

// ChainLister is an optional Restorer capability: list one chain the way
// "iptables -t TABLE -S CHAIN" does ("-P CHAIN POLICY" or "-N CHAIN", then
// its "-A" rules in iptables-save form). With iptables-nft 1.8.9, listing a
// single chain fetches only that chain, so it stays cheap (~10 ms) where
// iptables-save of a 110k-chain nat table runs minutes and then crashes.
// The iptables proxier uses it to check its jump rules when it cannot read
// whole tables; TableRollback and the tamper Monitor list single chains too.
type ChainLister interface {
	// ListChain returns (nil, nil) when the chain does not exist.
	ListChain(ctx context.Context, table, chain string) ([]byte, error)
}
