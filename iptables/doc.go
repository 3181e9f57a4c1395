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
//     service port whose port or endpoints changed). Top-level chains are
//     always rendered completely; per-service chains (KUBE-SVC/SVL/EXT/FW/
//     SEP) only for changed services unless the snapshot is full. The
//     Rendering knows nothing of the kernel, and nothing after Render
//     changes it. Output is deterministic: services are visited by
//     svcPortName and Rendering.Bytes lays chains out KUBE-NODEPORTS,
//     KUBE-SERVICES, then by name, which is how upstream's golden tests
//     normalize its (map-ordered) output, so goldens compare byte for byte.
//     A Rendering belongs to its Renderer (its rule bytes are slices of
//     the Renderer's reused buffers, its active chains the Renderer's map):
//     it is valid until that Renderer's next Render, and its contents are
//     reachable only through a check that panics after it (a counter
//     compare), as the snapshot it was rendered from is valid only until
//     the Tracker's next Snapshot (proxier.Snapshot).
//   - Proxier (a proxier.Backend) runs each sync as a one-way pipeline of
//     steps with their own types; no step edits an earlier step's output:
//     1. decide (syncKind): full when the snapshot is. "The next sync must
//     be full" is proxier.Runner's alone (first sync, after a failure,
//     ForceFull, hourly); the Proxier only widens a partial snapshot
//     when its memory cannot serve as the kernel view (none yet, not
//     trusted, or rendered in the other large-cluster mode).
//     2. read (kernel_read.go → kernelState): what the tables hold, one type
//     whatever its provenance, which the read step decides: the memory
//     of the last successful sync (partial syncs read nothing), whole
//     tables from iptables-save, or single-chain listings where Save
//     cannot work (a 10k-service nat table: minutes, then a crash) with
//     the memory standing in for per-service chains. The memory is not
//     trusted after a failed sync that relied on it, nor after
//     ForgetKernelState (the tamper monitor); chains a failed sync's
//     render dropped stay known as stale.
//     3. render (Rendering): see above; no kernel knowledge. After it, a
//     kernelState made of listings alone lists the stale chains that
//     nat's top-level chains lead to and the rendering does not need.
//     4. diff (diff.go → changes): the chains that differ from the kernel
//     state (or rule-level edits of long top-level chains known
//     rule by rule), the jump rules the kernel lacks and the canaries
//     (full syncs), the stale per-service chains to delete. Only our
//     chains are ever declared, so --noflush leaves other software alone.
//     5. lay out (restore_plan.go → restorePlan): how iptables 1.8.9 wants
//     it fed: nat last (for the rollback), a "-S" prefix and a block of
//     its own for inserts when a large input meets a small table,
//     batches of per-service chains for a large full sync that could
//     not read nat.
//     6. apply: the restore(s) through netfilter.TableRollback, which is told
//     what the kernelState knows; on success the changes become the
//     memory, on failure the memory still describes the kernel.
//     A restart over existing rules writes only what differs (69 bytes at
//     1k services), never flushing.
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
//     netfilter.TableRollback, telling it what the kernelState knows
//     (tables read whole, or the rules it wrote into top-level chains).
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
// rendering and kernel access; here each step is small and has its own
// type, so each is tested alone on the Fake (kernel_read_test.go,
// diff_test.go, restore_plan_test.go, apply_test.go), the renderer without
// root (golden text, packet tracing through netfilter/ruleset), and the
// whole against the real binaries (netfilter/xtables) in network
// namespaces (proxier_kernel_test.go, fuzz_kernel_test.go). The iptables
// 1.8.9 workarounds (no Save of a large nat table, the list prefix,
// interleaved declarations, batches) live with the kernel access (read,
// lay out, restore text), not in the render.
package iptables
