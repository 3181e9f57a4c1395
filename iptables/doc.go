// Package iptables is kproxy's iptables backend: it renders a proxier.Snapshot
// as iptables-restore input identical to upstream kube-proxy's (chain names,
// comments, rule text, probabilities, rule order within chains; comments are
// always quoted, see below) and applies
// it through the Restorer seam.
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
//   - Tamper detection (monitor.go): Monitor polls TamperChecks every
//     syncPeriod with single-chain listings — the canaries in mangle, nat
//     and filter and the jumps from nat PREROUTING/OUTPUT to KUBE-SERVICES —
//     starting after the first full sync, and reports failed checks once per
//     full sync; Proxier.ForgetKernelState makes the next sync full and
//     memory-less. IPVS mode uses the same monitor.
//   - Restores that carry several tables are all-or-nothing: iptables-restore
//     commits table by table, so the Proxier (and Cleanup, and IPVS mode's
//     rules) restore through TableRollback, which snapshots the tables
//     before the last block and puts them back when a later block fails.
//     The Proxier writes nat, the table that grows with the cluster, last,
//     so it is never read for that (rollback.go).
//   - Cleanup removes what kproxy or upstream kube-proxy installed in
//     iptables mode, except KUBE-MARK-MASQ and kubelet's KUBE-FIREWALL
//     (cmd/kproxy's --cleanup then runs IPVS mode's cleanup too, which, as
//     upstream's, also removes nat KUBE-MARK-MASQ; README lists it all).
//
// Why this shape: upstream's single 900-line sync function mixes planning,
// rendering and kernel access; here each step is small and the renderer can
// be tested (golden text, packet tracing through iptables/ruleset) without
// root. Subpackages: ruleset (in-memory Fake, parser, tracer) and kernel
// (the exec-based Restorer).
package iptables
