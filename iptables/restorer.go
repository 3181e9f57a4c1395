package iptables

import "context"

// Restorer is the kernel seam of the iptables backend: one address family's
// iptables-restore and iptables-save. The real implementation runs the binaries
// (iptables/kernel); the fake (iptables/ruleset) keeps tables in memory and
// rejects what the kernel would reject.
type Restorer interface {
	// Restore applies iptables-restore input with --noflush semantics: a
	// declared ":CHAIN - [0:0]" is created or flushed, undeclared chains are
	// left alone, and the whole input is applied atomically or not at all.
	Restore(ctx context.Context, data []byte) error
	// Save returns iptables-save output for one table ("filter", "nat", ...).
	Save(ctx context.Context, table string) ([]byte, error)
}
