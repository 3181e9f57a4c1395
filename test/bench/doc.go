// Package bench measures kproxy's iptables sync at scale against the real
// kernel: N ClusterIP services × K endpoints are fed as API objects through
// proxier.Tracker (the same path a cluster takes), and the snapshots drive
// iptables.Proxier over xtables.Runner inside network namespaces the
// benchmark creates (kpx-bench-<random>) and always deletes.
//
// One round measures, each in its own fresh namespace where needed:
//   - full: the first (full) sync into an empty namespace;
//   - endpoint: a partial sync after one endpoint of one service changed;
//   - slice-delete: a partial sync after one service's EndpointSlice was deleted;
//   - restart: a new Tracker and Proxier (fresh process state) doing a full
//     sync over the rules already in the kernel;
//   - plain: iptables-restore without --noflush of the first sync's input
//     into another empty namespace, the floor a rule set of that size costs.
//
// Figures are medians over rounds: wall time of Sync (including the
// iptables-save reads it does), the restore input size, the time spent in
// iptables-restore and iptables-save children, the children's peak RSS
// (from /usr/bin/time) and this process's RSS. Nothing here touches the
// root network namespace; everything runs under "ip netns exec".
//
// IPVS mode (Options.Modes, ipvs.go) runs the same scenarios (no plain)
// with kproxy's IPVS backend as cmd/kproxy wires it: virtual servers over
// netlink, kube-ipvs0 addresses, ipsets and the iptables rules IPVS mode
// needs, in the round's namespace. Its seams are metered (HandleMeter,
// AddressMeter, IPSetMeter): every Handle call and every virtual server and
// address a sync named, so CheckIPVSPartial can state that a one-service
// partial sync neither rescans the table nor names another service. With
// several modes each round runs them in turn, and Compare divides their
// medians. IPVS needs a kernel with IPVS: test/vm's RunBench
// (make bench-ipvs) runs kpx-bench in the qemu guest.
package bench
