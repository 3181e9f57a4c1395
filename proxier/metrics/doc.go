// Package metrics defines kproxy's Prometheus metrics with upstream
// kube-proxy's names, types, labels, help texts and buckets
// (pkg/proxy/metrics, labels as of v1.34), so existing dashboards and alerts
// keep working. kproxy's own additions (kproxy_rules_tampered_total, and
// IPVS mode's kproxy_ipvs_sync_failures_total, kproxy_ipvs_virtual_servers
// and kproxy_ipvs_bound_addresses) carry the kproxy_ prefix instead, so no
// dashboard mistakes them for upstream's.
//
// Per mode, an upstream metric means what upstream's mode reports in it:
// kubeproxy_sync_proxy_rules_iptables_restore_failures_total counts failed
// iptables-restores (in IPVS mode nothing else: IPVS, ipset and netlink
// failures go to kproxy_ipvs_sync_failures_total), and
// kubeproxy_sync_proxy_rules_iptables_total counts iptables rules of the
// nat and filter tables only. The backend that knows which kernel
// interface failed updates the metrics of its mode (the IPVS Proxier is
// given the Metrics); cmd/kproxy's sync observer updates the rest.
//
// Contract: New creates every metric and a private registry holding them plus
// the Go and process collectors. Nothing is registered globally and the
// package has no mutable state, so tests can create as many instances as they
// like. Callers update the exported fields directly; label values for
// ip_family are string(v1.IPFamily) ("IPv4", "IPv6"). Vector metrics appear in
// a scrape only once a label combination has been used, as upstream.
package metrics
