// Package conntrack removes stale UDP conntrack entries over netlink (no
// conntrack binary), following upstream kube-proxy's reconciler
// (pkg/proxy/conntrack/cleanup.go) with two deliberate differences:
// Services with zero serving endpoints are cleaned too (upstream skipped them,
// kubernetes/kubernetes#139628, black-holing clients until their entries
// expired), and all deletions of one pass share a single table dump.
//
// Contract: Cleaner.Clean(snapshot) deletes, for every UDP service port in
// the snapshot, the UDP entries whose original destination is the port's
// frontend (cluster IP, load-balancer VIP or external IP, on the service
// port) or whose original destination port is its NodePort, and whose reply
// source (IP and port) is not a serving endpoint of that port. Serving means
// Serving or Ready, regardless of traffic policy, topology or termination,
// so existing flows follow the same rules as TCP connections. Entries of
// Services absent from the snapshot are left to expire, as upstream.
//
// Why the reply source: after DNAT the reply tuple's source is the endpoint
// that was chosen; an entry created while there were no endpoints (or
// before a rule existed) has the frontend itself as reply source and is
// therefore stale as soon as the port has any different set of endpoints.
//
// Kernel access goes through the small Handle interface, satisfied by
// *netlink.Handle, so tests use a fake and kernel tests a handle opened in a
// test network namespace. The package never logs; errors are returned.
package conntrack
