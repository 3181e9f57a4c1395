// Package nftables is kproxy's nftables mode: upstream kube-proxy v1.37's
// table layout ("table ip kube-proxy" / "table ip6 kube-proxy": the same base
// chains and priorities, the verdict maps service-ips and service-nodeports,
// the sets and maps cluster-ips, nodeport-ips, no-endpoint-services,
// no-endpoint-nodeports, firewall-ips and hairpin-connections, and per
// service port the service-/local-/external-/firewall-/endpoint- chains and
// affinity- sets with upstream's hashed names, rules and comments), so that
// `nft list table ip kube-proxy` reads the same as upstream's for the same
// objects and the two replace each other.
//
// Contract: a Proxier is a proxier.Backend for one IP family over a
// knftables.Interface (proxier/netfilter/nft.Open, which bounds every nft
// command, in production; knftables' Fake in tests and --dry-run) and,
// optionally, a netlink connection (nftnl.Conn) that writes the same
// operations without nft. Every transaction is atomic; a Sync is one,
// except a large full sync and a partial one that swaps chains:
//
//   - full (snapshot Full, or the first sync): the table, base chains and
//     fixed chains re-created and refilled, every set and map flushed and
//     refilled, every service chain re-written. The table's chains and sets
//     are listed once to find per-service chains (names with a "/") and
//     affinity sets that nothing renders any more (a restart over an
//     existing table, kproxy's or upstream's). With a netlink connection
//     the kernel's chains are also read as digests (nftnl.Digest), and a
//     chain that already holds what is rendered is not rewritten: at 10000
//     services rewriting is seconds of kernel time, while a restart over a
//     table that is right needs none. Over more than
//     Options.FullSyncChunkChains service chains it is several
//     transactions: the fixed part, the service chains a chunk at a
//     time, then every element with the stale chains flushed, all over
//     netlink when there is a connection, so that such a sync runs no nft
//     (see Sync).
//   - partial: only the changed service ports' chains whose rules differ,
//     their affinity sets, and the element additions and deletions whose
//     kernel value changes, computed against the mirror of the last
//     successful transaction. A partial sync never lists the table; it
//     goes over netlink when there is a connection. There, a service
//     chain whose rules look up an anonymous map is not flushed: its new
//     rules go in ahead of the old ones, which a second transaction
//     deletes by handle (listed for that chain alone), because a packet
//     that began on a flushed rule can look its map up after the commit
//     and miss (swap.go). A full sync swaps the chains it rewrites that
//     the kernel holds with other rules (up to maxFullSyncSwaps), their
//     old rules deleted by the last transaction, or by one of their own.
//
// Chains that are no longer used are flushed and deleted by a later sync
// at least a second afterwards, in their own transaction (upstream: kernels
// before 6.2 keep a chain referenced for a moment after the map element
// pointing at it is deleted); affinity sets are deleted at once. A failed
// transaction leaves the kernel and the mirror as they were and returns a
// wrapped error (counted in kubeproxy_sync_proxy_rules_nftables_sync_failures_total);
// the runner retries with a full snapshot.
//
// An affinity set whose timeout changes is deleted and re-created (after
// the chains naming it are flushed, in the same transaction), so the result
// does not depend on whether the kernel updates a set's timeout in place;
// that endpoint's affinity entries start over.
//
// Where two service ports contribute the same element key with different
// values (e.g. one external IP and port on two Services), the smaller
// service port name wins, deterministically (upstream: map order).
//
// Traffic to unallocated addresses of the cluster's ServiceCIDRs is
// dropped: Options.ServiceCIDRs, then SetServiceCIDRs (cmd feeds it from
// the ServiceCIDR objects), written by the next full sync as upstream does.
//
// Differences from upstream kept on purpose: a loadBalancerSourceRanges
// entry that cannot be parsed fails closed as in kproxy's other modes (with
// no valid range left the firewall chain drops everything); upstream's
// alpha localhost NodePort support (KubeProxyNFTablesLocalhostNodePorts, off
// by default) is not implemented, and its objects are removed by a full
// sync as upstream does with the gate off.
//
// Layout: names.go (hashAndTruncate and object names), table.go and
// skeleton.go (the fixed objects), render*.go (pure: one service port →
// chains, sets, elements), mirror.go, diff.go, swap.go and full.go (plans), apply.go
// (plans → transaction), proxier.go (Sync), snapshot.go (the one place that
// reads a Snapshot's services and endpoints).
package nftables
