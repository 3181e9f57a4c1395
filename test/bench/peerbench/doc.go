// Package peerbench measures whole proxies, upstream kube-proxy and kproxy,
// as processes against one real kube-apiserver (test/cluster), on the same
// machine, the same objects and in the same run, so that their figures can
// be divided. It is the nftables-mode benchmark (make bench-nft); the
// in-process benchmarks of kproxy's backends are package test/bench.
//
// One run: start the control plane in its own namespace, register a Node,
// create Services × Endpoints (ClusterIP, TCP, one port; endpoints on
// another node, addresses outside every pod CIDR) through the API, then,
// for each round and each peer in turn, in a fresh namespace of its own
// (the node address on a veth pair whose both ends stay in the namespace,
// the API relayed at 127.0.0.1 by cluster.ServeAPIIn), with the same
// configuration file (mode nftables, deployed defaults otherwise):
//
//   - full: start the proxy; the time until "nft list map ip kube-proxy
//     service-ips" holds every service, and the proxy's own first full sync
//     (its kubeproxy_sync_full_proxy_rules_duration_seconds);
//   - endpoint: Changes times, one endpoint of one service replaced through
//     the API, each written after minSyncPeriod (1 s) passed since the
//     previous one was seen (as the deployed configuration paces syncs); the
//     time from the API write until the new address is in the service's
//     chain, and the proxy's own partial sync duration;
//   - restart: SIGTERM, start again over the existing table; the time until
//     the new process reports a completed sync (its
//     kubeproxy_sync_proxy_rules_last_timestamp_seconds) and the table again
//     holds every service;
//   - rss: the peak, over the whole round, of the resident memory of the
//     proxy and its children (sampled from /proc every 100 ms), and the
//     main process's own VmHWM;
//   - first packet (Options.FirstPacket): after the full sync, the median
//     time to connect to the first and to the last service created and
//     read the pod server's greeting, from an address in the cluster CIDR
//     (no masquerade). Every endpoint address is routed to the namespace
//     itself (a local route over 10.128.0.0/9), where one pod server
//     answers for all of them.
//
// A peer runs in nftables mode (every scenario) or, as "upstream-iptables"
// and "kproxy-iptables", in iptables mode (full sync, first packet and
// memory only), the point of comparison for the first packet: iptables
// mode walks KUBE-SERVICES linearly, nftables mode looks up a map.
//
// Figures are medians over rounds; with two peers, the report divides the
// second's medians by the first's. Nothing touches the caller's network
// namespace; every namespace and process is removed by id when the run
// ends, also on failure.
package peerbench
