// Package metrics defines kproxy's Prometheus metrics with upstream
// kube-proxy's names, types, labels, help texts and buckets
// (pkg/proxy/metrics, labels as of v1.34), so existing dashboards and alerts
// keep working. kproxy's own additions (kproxy_rules_tampered_total) carry
// the kproxy_ prefix instead, so no dashboard mistakes them for upstream's.
//
// Contract: New creates every metric and a private registry holding them plus
// the Go and process collectors. Nothing is registered globally and the
// package has no mutable state, so tests can create as many instances as they
// like. Callers update the exported fields directly; label values for
// ip_family are string(v1.IPFamily) ("IPv4", "IPv6"). Vector metrics appear in
// a scrape only once a label combination has been used, as upstream.
package metrics
