// Package netfilter is the netfilter core every kproxy backend shares: what
// iptables mode, IPVS mode and nftables mode need of the kernel's packet
// filter besides their own rules. The backends depend on
// it and never on each other; it depends on neither, nor on config.
//
// What it owns:
//   - names.go: the chain names and the masquerade mark format of every
//     mode (upstream's spellings), IPVS mode's declared chains, and which
//     chains are iptables mode's per-service chains.
//   - jumps.go: the jump rules each mode keeps at the top of built-in
//     chains (upstream's iptablesJumpChains of both modes), as insertions,
//     as iptables-save prints them, and how to find them in a saved table.
//   - localdetect.go, nodeports.go: local-traffic detection (the matches of
//     detectLocalMode) and node-port address matching (nodePortAddresses
//     per family); config parses and validates the setting and hands over
//     a NodePortAddresses.
//   - restorer.go: the kernel seam, Restorer (iptables-restore --noflush
//     and iptables-save of one family) and the optional ChainLister
//     (iptables -S CHAIN). Implementations: xtables.Runner (the binaries)
//     and ruleset.Fake (in memory, refusing what the kernel refuses).
//   - rollback*.go: TableRollback, which makes a multi-table restore all or
//     nothing (iptables-restore commits table by table).
//   - monitor.go: the tamper checks and Monitor (canaries in mangle, nat
//     and filter, the nat jumps to KUBE-SERVICES), which both modes' full
//     syncs provide for.
//   - cleanup.go: kproxy --cleanup's removal of kproxy's and upstream's
//     chains, one algorithm for both modes (CleanupIPTablesMode,
//     CleanupIPVSMode; the README's "What kproxy --cleanup removes" is its
//     contract): only the mode's own chains, their jumps from built-in
//     chains, never another program's rule or a chain another program
//     still jumps to, all or nothing.
//   - cleanup_nftables.go: the third cleanup owner, CleanupNFTablesMode:
//     nftables mode's tables (`table ip kube-proxy`, `table ip6
//     kube-proxy`), deleted whole through knftables, as upstream does (all
//     of that mode lives in them; no other table is touched). A missing
//     table is not an error.
//
// Subpackages: ruleset (the in-memory model: the tokenizer iptables-restore
// 1.8.9 uses, the one reader of iptables-save output, the Fake, Normalize
// and the packet tracer), xtables (the exec-based Restorer and the
// nft/legacy backend detection) and nft (knftables interfaces with bounded
// commands, nftables mode's kernel and nft version prerequisites). Sysctls are proxier/sysctl's.
//
// Why this shape: the same logic grew twice with the two backends (chain
// constants, jump rules, three iptables-save parsers, two cleanups), and
// IPVS mode imported the iptables backend for its seam. One package that
// reads the kernel's tables the same way everywhere removes the drift (IPVS
// mode's cleanup split rules on spaces and so took a comment for a jump);
// the nftables mode adds its table here (a third cleanup owner) rather than
// a third copy. Everything kernel-facing is behind Restorer, so the whole
// package is tested against ruleset.Fake without root, and against the real
// binaries in network namespaces by xtables' and the backends' kernel tests.
//
// The package has no package-level mutable state and never logs.
package netfilter
