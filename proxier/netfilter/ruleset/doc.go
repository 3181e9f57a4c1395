// Package ruleset models iptables tables in memory: it parses
// iptables-restore input and iptables-save output into tables, chains and
// structured rules, applies restore input to an in-memory Fake that rejects
// what the kernel rejects, normalizes rule text so kproxy's output can be
// compared with the kernel's and with upstream kube-proxy's, and traces a
// packet through the rules. It is also the one reader of what the backends
// read back from the kernel (SavedTable).
//
// Contract:
//   - Fake implements netfilter.Restorer and ChainLister for one address family with
//     iptables-restore --noflush semantics: ":CHAIN - [0:0]" creates or
//     flushes a user chain, undeclared chains are untouched, and each
//     "*table ... COMMIT" block commits on its own as with iptables-restore
//     (nft and legacy): a failing block changes nothing, the blocks before it
//     stay applied and those after it are not run, so tests see the partial
//     application netfilter.TableRollback must undo. Like iptables 1.8.9 it refuses a jump
//     to a chain that does not exist yet at that line, deleting a chain that
//     is referenced, non-empty, missing or built-in, appending to a missing
//     chain, chain names over 28 characters, addresses of the other family,
//     nat targets outside nat or reachable from the wrong hook, and any
//     option the model does not know. Save prints what iptables-save prints
//     (without its dated header), so the fake and the kernel can be diffed.
//   - Lines are read and split into arguments exactly as iptables-restore
//     1.8.9 does (SplitArgs, ParseRestore): byte for byte, quotes and
//     backslash escapes, NUL ending a line, an unterminated quote keeping the
//     newline, comments cut at 255 bytes, the line, argument and
//     argument-count limits; QuoteArg prints strings as iptables-save does.
//     Cases are pinned by tests checked against the real binary.
//   - The rule model covers what kube-proxy writes (addresses, protocol,
//     interfaces, comment/tcp/udp/sctp/addrtype/mark/conntrack/statistic/
//     recent matches, jump/ACCEPT/DROP/RETURN/REJECT/DNAT/MARK/MASQUERADE
//     targets). Anything else is a parse error, because a fake that accepts
//     what it does not understand would hide bugs.
//   - ParseSave (SavedTable) is the one reader of iptables-save output and
//     chain listings for the backends, the rollback, the tamper checks and
//     cleanup: chains, built-in policies, and each rule's line, chain and
//     -j/-g target, split with SplitArgs when the line is quoted (so a
//     comment never passes for a jump). It does not parse matches: kernel
//     tables hold other software's rules, and a 10k-service nat table is
//     30 MB, read as one string with every name a substring of it.
//     ParseRestore is the full model, for the Fake and the comparisons.
//   - Tests on top of the Fake inject failures as the kernel would
//     (FailNextBlock, FailNextRestore, FailSaves, FailListings) and count
//     its calls.
//   - Normalize is the one definition of "same rules" used by every
//     comparison (fake vs kernel, kproxy vs upstream).
//   - Trace walks nat and filter like the kernel for a packet's first
//     (ctstate NEW) packet and returns every possible path, so renderer tests
//     assert behaviour (where does this packet go, is it masqueraded, is it
//     rejected) instead of rule text.
//
// The package is pure Go and needs no privileges.
package ruleset
