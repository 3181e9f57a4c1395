// Package ipvs is kproxy's IPVS backend core: it turns a proxier.Snapshot
// into IPVS virtual servers, destinations and kube-ipvs0 addresses, and
// reconciles them with the kernel.
//
// Shape (one sync, see Proxier.Sync): plan (BuildDesired, a pure function
// of the snapshot and the node's addresses) → addresses (bind the service
// addresses on the kube-ipvs0 dummy device) → virtual servers → destinations
// (Reconciler) → account (remember what was programmed, unbind stale
// addresses). Every kernel touchpoint sits behind a small interface with a
// real implementation and an exported fake that rejects what the kernel
// rejects: Handle (IPVS over netlink, github.com/moby/ipvs; Fake) and
// AddressManager (kube-ipvs0 over netlink; FakeAddresses).
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
//     proxier_plan.go, ipset_index.go). Partial syncs therefore trust
//     Snapshot.Changed to name every port that changed.
//   - A virtual server two service ports want (same external IP, port and
//     protocol) goes to the first in name order, and to the other one when
//     its owner lets it go; upstream lets the last writer win each sync.
//   - Graceful termination has a deadline (Options.TerminationTimeout), a
//     destination that comes back is restored to weight 1 in place instead of
//     deleted and re-added, and on start weight-0 destinations that are
//     desired are restored (a restart never leaves one stuck at weight 0)
//     while undesired ones are queued for termination again.
//
// Concurrency: a Proxier serializes Sync and ProcessTerminating with one
// mutex, because a moby/ipvs handle is one netlink socket.
//
// ipsets and iptables rules: when Options.Netfilter is set, Sync also brings
// upstream's ipsets (KUBE-CLUSTER-IP, KUBE-NODE-PORT-*, KUBE-LOOP-BACK, ...)
// to their desired members with one `ipset -exist restore`, and writes the
// nat/filter rules IPVS mode needs with one iptables-restore, inserting only
// missing jump rules (ipset*.go, rules*.go, proxier_netfilter.go). The
// restore goes through netfilter.TableRollback (a failing filter block puts
// back the nat block committed before it), and every ipset run has a
// deadline (ExecIPSetOptions.Timeouts) after which it is killed. A full
// sync lists the kernel's sets, reads the nat and filter tables and
// rewrites the rules. A partial sync writes only the members the changed
// ports added or removed (no listing; nothing at all when none did), and
// runs no iptables-save or iptables-restore when the rules it renders are
// the ones it last wrote — the rules depend only on which sets are empty
// and on the LB VIPs the node may not reach, so endpoint changes never
// alter them. Full syncs also (re)create the KUBE-PROXY-CANARY chains of
// mangle, nat and filter in that same restore, for the tamper monitor
// (netfilter.Monitor), which forces a full sync when they or the jumps to
// KUBE-SERVICES are gone. Any failure makes the next sync full, which re-reads the
// kernel; members or rules someone else changed are repaired then.
//
// Host setup at start (settings.go): the sysctls IPVS mode needs
// (vs/conntrack, expire_nodest_conn, expire_quiescent_template,
// conn_reuse_mode, ip_forward), strictARP (raising arp_ignore/arp_announce,
// never lowering a stricter value), both through a sysctl.Interface
// (proxier/sysctl), the tcp/tcpfin/udp timeouts through the Handle, and
// upstream's scheduler probe, run in a throwaway namespace.
//
// TODO: no-local-endpoints metrics and conntrack cleanup of stale UDP endpoints.
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
// iptables-save output, the chain cleanup) and proxier/sysctl. The package
// depends on neither iptables/ nor config/: cmd/kproxy hands it typed
// options.
package ipvs
