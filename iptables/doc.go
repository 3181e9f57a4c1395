// Package iptables is kproxy's iptables backend: it renders a proxier.Snapshot
// as iptables-restore input identical to upstream kube-proxy's (chain names,
// comments, rule text, probabilities, rule order within chains; comments are
// always quoted, see below) and applies
// it through the netfilter.Restorer seam.
//
// Contract:
//   - Rendering (Renderer, Render) is a pure function of a snapshot and
//     RenderOptions (a Renderer caches chain names and each unchanged
//     service's chains between renders; snap.Changed must list every
//     service port whose port or endpoints changed). Top-level chains are always rewritten completely;
//     per-service chains (KUBE-SVC/SVL/EXT/FW/SEP) only for changed services
//     unless the snapshot is full. Output is deterministic: services are
//     visited by svcPortName and chains are laid out KUBE-NODEPORTS,
//     KUBE-SERVICES, then by name, which is how upstream's golden tests
//     normalize its (map-ordered) output, so goldens compare byte for byte.
//   - Proxier (a proxier.Backend) runs each sync as plan → render → apply →
//     account with one Restore call. The first sync, any sync after a
//     failure, and a change of large-cluster mode are full; a full sync reads
//     nat and filter to delete leftover per-service chains and to insert only
//     the jump rules that are missing (so they are never duplicated), and
//     redeclares the KUBE-PROXY-CANARY chains. A full sync never depends on
//     iptables-save succeeding (it crashes on a 10k-service nat table): it
//     falls back to the last successful sync's memory or, after a restart,
//     to single-chain listings (ChainLister), and then writes the service
//     chains in several restores (plan_kernel.go, apply_batches.go). Partial
//     syncs delete the chains the renderer reports dropped for changed or
//     removed services. Only our chains are ever declared, so --noflush
//     leaves other software alone.
//   - Every string the renderer writes is quoted: comments (which carry
//     object names) always in double quotes with \ and " escaped, control
//     characters and invalid UTF-8 replaced and the text cut to 255 bytes on
//     a UTF-8 boundary (CommentText); configured matches (the local-traffic
//     detector) quoted when needed. So no object name, validated or not,
//     can end an argument, add a rule or fail a restore. The one textual
//     difference from upstream is that upstream's single-word comments are
//     quoted too; the kernel stores, and iptables-save prints, the same.
//   - A service port whose FirewallRequired is set gets a KUBE-FW chain
//     even with no source range of its family: an unparseable range fails
//     closed.
//   - Tamper detection: every full sync declares the KUBE-PROXY-CANARY
//     chains and the jumps the netfilter.Monitor checks (cmd/kproxy runs
//     it); Proxier.ForgetKernelState makes the next sync full and
//     memory-less.
//   - Restores that carry several tables are all-or-nothing: iptables-restore
//     commits table by table, so the Proxier restores through
//     netfilter.TableRollback, telling it what it knows of the kernel
//     (the tables a full sync read, or its memory of the chains it wrote).
//     It writes nat, the table that grows with the cluster, last, so it is
//     never read for that.
//
// What it shares with the other modes lives in proxier/netfilter: the chain
// names and jump rules, the local-traffic detector, the Restorer seam and
// its rollback, the tamper monitor, the reader of iptables-save output
// (ruleset.ParseSave) and --cleanup (netfilter.CleanupIPTablesMode removes
// what kproxy or upstream kube-proxy installed in iptables mode). This
// package depends on it, never on ipvs/.
//
// Why this shape: upstream's single 900-line sync function mixes planning,
// rendering and kernel access; here each step is small and the renderer can
// be tested (golden text, packet tracing through netfilter/ruleset) without
// root, and against the real binaries (netfilter/xtables) in network
// namespaces (proxier_kernel_test.go, fuzz_kernel_test.go).
package iptables
