// Package nftnl writes kproxy's syncs to nf_tables over netlink,
// in-process, instead of through `nft -f`: nft loads the table's sets
// before every transaction (~160 ms of CPU at 10k services), while the
// same one-service batch written here costs the kernel's commit only
// (10–15 ms; test/experiments/nlproto measured both).
//
// Contract:
//
//   - What can be written is closed: the operations of Batch (chains,
//     affinity sets, rules, elements of the table's existing sets and maps;
//     and the fixed objects of objects.go: the table with its comment, base
//     chains, commented chains, named sets and verdict maps, counters) and
//     the rule shapes of rule.go and rule_fixed.go (a full sync's fixed
//     chains). Batch.String is the same batch as nft text in knftables'
//     format, and Batch.AppendTo the same objects in a knftables
//     transaction, so a batch can be checked against, or fall back to,
//     `nft -f`, and run on knftables' Fake in unit tests.
//   - Every operation and shape is encoded as nft 1.0.6 encodes the same
//     text: the same expressions and registers, set flags, key types and
//     byte orders, userdata records (which nft reads back to print), and
//     nft's own rewrites (a one-entry set becomes a comparison, a
//     byte-aligned prefix loads fewer bytes, an interval set's entries are
//     merged). So `nft list table` after Conn.Run is identical, byte for
//     byte, to the listing after `nft -f` of Batch.String; the kernel tests
//     hold that for every shape in both families, and for the fixed
//     objects also the kernel's dump of each, attribute for attribute.
//   - Input nft would refuse (an unknown protocol, an address of the other
//     family, a name or comment too long, an empty numgen list …) is an
//     error from Run before anything is sent, never a panic.
//   - Conn.Run is one atomic transaction; its error names the first
//     rejected operation (and element) and unwraps to the kernel's errno.
//     A hung kernel call ends at the context's deadline or after
//     Options.Timeout, with ErrOutcomeUnknown: the caller resyncs.
//
// Only google/nftables' expression encoders are used: its Conn writes
// anonymous sets with big-endian key userdata, which nft then lists as
// different numbers, and it cannot name a failed operation.
package nftnl
