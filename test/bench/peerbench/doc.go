// Package peerbench measures whole proxies, upstream kube-proxy and kproxy,
// as processes against one real kube-apiserver (test/cluster), on the same
// machine, the same objects and in the same run, so that their figures can
// be divided. It is the nftables-mode benchmark (make bench-nft); the
// in-process benchmarks of kproxy's backends are package test/bench.
//
// One run: start the control plane in its own namespace, register a Node,
// create Services × Endpoints (ClusterIP, TCP, one port; endpoints on
// another node) through the API, then, for each round and each peer in
// turn, in fresh namespaces of its own, with the same configuration file
// per mode (deployed defaults otherwise): a node namespace (the node
// address on eth0, the API relayed at 127.0.0.1 by cluster.ServeAPIIn)
// and a pod namespace behind eth0. Traffic is real: every initial endpoint
// address is routed to the node namespace itself (a local route over
// 10.128.0.0/12), where one pod server answers for all of them; every
// address an endpoint change writes (10.200.0.0/13) is routed to the pod
// namespace, where a pod server named "changed" answers. Connections come
// from an address in the cluster CIDR, so neither mode masquerades them.
//
//   - full: start the proxy; the time until "nft list map ip kube-proxy
//     service-ips" (iptables mode: KUBE-SERVICES) holds every service, and
//     the proxy's own first full sync (its
//     kubeproxy_sync_full_proxy_rules_duration_seconds, IPv4). Every later
//     scenario starts only once that metric reports the sync complete: the
//     table can hold every service before the rules carry traffic;
//   - endpoint: Changes times, one endpoint of a service never changed
//     before replaced through the API, each written after minSyncPeriod
//     (1 s) passed since the previous one was seen (as the deployed
//     configuration paces syncs); the time from the API write until a
//     connection to the ClusterIP is answered by "changed" (connections
//     back to back; one in ten reaches it, so detection adds a few ms), and
//     the proxy's own partial sync metric. Listing the chain instead is not
//     an option: at 10k services "nft list chain" takes 3-5 s;
//   - restart: SIGTERM, start again over the existing table; the time until
//     the new process reports a completed sync (its
//     kubeproxy_sync_proxy_rules_last_timestamp_seconds) and the table again
//     holds every service; connections to one service, every 10 ms from
//     before the SIGTERM until then, count traffic loss;
//   - rss: the peak, over the whole round, of the resident memory of the
//     proxy and its children (sampled from /proc every 100 ms), and the
//     main process's own VmHWM;
//   - first packet (Options.FirstPacket): after the full sync, the median
//     time to connect to the first and to the last service created and
//     read the pod server's greeting.
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
