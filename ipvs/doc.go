// Package ipvs is kproxy's IPVS backend: the Proxier (a proxier.Backend
// for one IP family), the desired state it computes from a snapshot, the
// memory of what it programmed, and the orchestration of the kernel seams
// that live in its subpackages. It also holds Cleanup (--cleanup) and
// DryRun (--dry-run), which drive the same seams.
//
// Layout: one subpackage per kernel job, each with its seam, a real
// implementation and a fake that rejects what the kernel rejects, plus the
// logic that belongs to that job alone:
//
//	ipvs/vs         the IPVS table over moby/ipvs (Handle, KernelHandle,
//	                Fake) and the Reconciler with graceful termination
//	ipvs/addresses  kube-ipvs0 and the node's addresses over route netlink
//	                (Manager, Netlink, Fake)
//	ipvs/ipset      upstream's sets, entries, the ipset command (Interface,
//	                Exec, Fake) and the Syncer
//	ipvs/rules      the companion iptables rules: a pure renderer and an
//	                Applier over proxier/netfilter's Restorer
//	ipvs/startup    host settings at start (sysctls, strictARP, timeouts,
//	                the scheduler probe) over vs.Handle and proxier/sysctl
//
// Dependencies point one way: the subpackages never import this package
// (ipset < rules, vs < startup; addresses stands alone), and this package
// is the only one that knows a snapshot's service ports map to virtual
// servers, addresses and set members. The package depends on neither
// iptables/ nor config/: cmd/kproxy hands it typed options.
//
// Shape of one sync (Proxier.Sync): plan (proxier_plan.go: BuildDesired's
// per-port servers and kube-ipvs0 addresses, assigned against memory) →
// bind addresses → ipsets and iptables rules (proxier_netfilter.go) →
// virtual servers and destinations (vs.Reconciler) → unbind stale
// addresses → account (commit the memory, report). Every step's error is
// tagged with the seam that failed (accounting.go); after a failure the
// next sync (full, see below) re-reads the kernel, and members or rules
// someone else changed are repaired then.
//
// Semantics follow upstream kube-proxy's IPVS mode: one virtual server per
// ClusterIP, external IP, load-balancer VIP and node IP:NodePort; weight-1
// masquerading destinations; ClientIP affinity as persistence with the
// service's timeout; cluster endpoints for ClusterIP unless
// internalTrafficPolicy is Local, local endpoints for external addresses when
// externalTrafficPolicy is Local, and — unlike iptables mode — the cluster
// endpoints when a Local policy has no local endpoint
// (kubernetes/kubernetes#97081). ClusterIPs, external IPs and LB VIPs that
// are not already node addresses are bound to kube-ipvs0; node IPs never are.
//
// Where kproxy deliberately differs from upstream:
//   - It never flushes and deletes only what it owns: a virtual server on an
//     address bound to kube-ipvs0 (before or after the sync), on a node IP
//     with a port in the NodePort range, or one it programmed itself. Other
//     virtual servers (keepalived, fwmark services, the other family,
//     ipvs.excludeCIDRs) are left alone, so excludeCIDRs is a safety net
//     rather than the only protection.
//   - Partial syncs: when the snapshot is not full, only the changed service
//     ports' virtual servers are queried (individually) and written; the
//     kernel table is not listed. kube-ipvs0 addresses are diffed against
//     memory, and node addresses (for NodePorts) are re-read only on full
//     syncs, so a node IP change waits for the next full sync. The host-side
//     work is also the changed ports' only: what was programmed is kept
//     indexed per service port (virtual servers, kube-ipvs0 addresses, set
//     members, with reference counts for what ports share), edited in place
//     under a journal that a failed sync rolls back (journal.go,
//     proxier_plan.go, set_index.go). Partial syncs therefore trust
//     Snapshot.Changed to name every port that changed.
//   - A virtual server two service ports want (same external IP, port and
//     protocol) goes to the first in name order, and to the other one when
//     its owner lets it go; upstream lets the last writer win each sync.
//   - Graceful termination has a deadline (Options.TerminationTimeout), a
//     destination that comes back is restored to weight 1 in place instead of
//     deleted and re-added, and on start weight-0 destinations that are
//     desired are restored (a restart never leaves one stuck at weight 0)
//     while undesired ones are queued for termination again (vs.Reconciler).
//
// Who decides that a sync is full: the caller. proxier.Runner makes the
// first sync, every sync after a failure and every ForceFull (tamper
// monitor) full; the Proxier does not remember that a sync failed. Inside
// a sync it still uses its own judgement about its memory: a partial
// snapshot before any full sync succeeded is planned full (there is no
// memory to edit), a failed partial sync rolls its memory edits back, and
// after any failure the ipset and iptables step forgets what it wrote, so
// its next run lists the sets and reads the tables again, whatever the
// snapshot says.
//
// Concurrency: Sync and ProcessTerminating are serialized by the
// vs.Reconciler's mutex, because a moby/ipvs handle is one netlink socket.
//
// ipsets and iptables rules: when Options.Netfilter is set, Sync also brings
// upstream's ipsets (KUBE-CLUSTER-IP, KUBE-NODE-PORT-*, KUBE-LOOP-BACK, ...)
// to their desired members with one `ipset -exist restore`
// (desired_sets.go computes each port's members; ipset.Syncer writes
// them), and writes the nat/filter rules IPVS mode needs with one
// iptables-restore, inserting only missing jump rules (rules.Applier). The
// restore goes through netfilter.TableRollback (a failing filter block puts
// back what the blocks before it committed); a full sync's also (re)creates
// the KUBE-PROXY-CANARY chains of mangle, nat and filter for the tamper
// monitor (netfilter.Monitor), mangle's in a block of its own first, so that
// filter stays last. Every ipset run has a deadline (ipset.ExecOptions.Timeouts)
// after which it is killed. A full sync lists the kernel's sets, reads the
// nat and filter tables and rewrites the rules. A partial sync writes only
// the members the changed ports added or removed (no listing; nothing at
// all when none did), and runs no iptables-save or iptables-restore when
// the rules it renders are the ones it last wrote — the rules depend only
// on which sets are empty and on the LB VIPs the node may not reach, so
// endpoint changes never alter them.
//
// Metrics (accounting.go, Options.Metrics): in IPVS mode
// kubeproxy_sync_proxy_rules_iptables_restore_failures_total counts only
// failed iptables-restores, as upstream's IPVS mode, and the SyncResult's
// Rules count the nat and filter rules written (for
// kubeproxy_sync_proxy_rules_iptables_total). Every failed sync is counted
// in kproxy_ipvs_sync_failures_total under the seam that failed (ipvs,
// addresses, ipset, iptables-save, iptables-restore); the virtual servers
// and kube-ipvs0 addresses programmed are kproxy_ipvs_virtual_servers and
// kproxy_ipvs_bound_addresses.
//
// The no-local-endpoints metric and the conntrack cleanup of stale UDP
// endpoints are mode-neutral: cmd/kproxy's sync observers do them after
// every sync, in this mode too.
//
// Cleanup (cleanup.go) removes only what kproxy owns by default — virtual
// servers on kube-ipvs0 addresses and NodePort virtual servers on node
// addresses, never those in excludeCIDRs — plus the IPVS-mode chains
// (netfilter.CleanupIPVSMode), the KUBE-* ipsets and kube-ipvs0;
// CleanupOptions.All flushes every virtual server as upstream does. DryRun
// (dryrun.go) runs the real Proxier against the fakes and prints virtual
// servers, addresses, ipsets and rules.
//
// What it shares with iptables mode lives in proxier/netfilter (chain names
// and jump rules, the local-traffic detector, node-port address matching,
// the Restorer seam with TableRollback, the canaries, the reader of
// iptables-save output, the chain cleanup) and proxier/sysctl.
package ipvs
