package metrics

import (
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Subsystem is upstream's metric prefix: every upstream metric is kubeproxy_<name>.
const Subsystem = "kubeproxy"

// KproxyNamespace prefixes the few metrics upstream has no equivalent of
// (kproxy_<name>), so they are never mistaken for upstream's.
const KproxyNamespace = "kproxy"

// Label names used by the vectors.
const (
	LabelIPFamily      = "ip_family"
	LabelTable         = "table"
	LabelTrafficPolicy = "traffic_policy"
	LabelCode          = "code"
	LabelCheck         = "check"
	LabelSeam          = "seam"
)

// Metrics holds every kube-proxy metric. Fields are safe for concurrent use.
type Metrics struct {
	// SyncProxyRulesLatency observes every sync (labels: ip_family).
	SyncProxyRulesLatency *prometheus.HistogramVec
	// SyncFullProxyRulesLatency observes full syncs (labels: ip_family).
	SyncFullProxyRulesLatency *prometheus.HistogramVec
	// SyncPartialProxyRulesLatency observes partial syncs (labels: ip_family).
	SyncPartialProxyRulesLatency *prometheus.HistogramVec
	// SyncProxyRulesLastTimestamp is the unix time of the last successful sync (labels: ip_family).
	SyncProxyRulesLastTimestamp *prometheus.GaugeVec
	// SyncProxyRulesLastQueuedTimestamp is the unix time a sync was last queued (labels: ip_family).
	SyncProxyRulesLastQueuedTimestamp *prometheus.GaugeVec
	// NetworkProgrammingLatency observes trigger-time-to-programmed latency (labels: ip_family).
	NetworkProgrammingLatency *prometheus.HistogramVec

	EndpointChangesPending prometheus.Gauge
	EndpointChangesTotal   prometheus.Counter
	ServiceChangesPending  prometheus.Gauge
	ServiceChangesTotal    prometheus.Counter

	// NoLocalEndpointsTotal counts services with a Local policy and no local
	// endpoints (labels: ip_family, traffic_policy = "internal" | "external").
	NoLocalEndpointsTotal *prometheus.GaugeVec

	// ProxyHealthzTotal / ProxyLivezTotal count responses (labels: code = "200" | "503").
	ProxyHealthzTotal *prometheus.CounterVec
	ProxyLivezTotal   *prometheus.CounterVec

	// IPTablesRestoreFailuresTotal counts failed iptables-restore runs (labels: ip_family):
	// in iptables mode every failed sync, in IPVS mode only the syncs whose
	// iptables-restore failed (as upstream, for both).
	IPTablesRestoreFailuresTotal *prometheus.CounterVec
	// IPTablesPartialRestoreFailuresTotal counts failed partial restores (labels: ip_family).
	IPTablesPartialRestoreFailuresTotal *prometheus.CounterVec
	// NFTablesSyncFailuresTotal counts failed nftables-mode sync transactions
	// (labels: ip_family), as upstream's nftables mode.
	NFTablesSyncFailuresTotal *prometheus.CounterVec
	// NFTablesCleanupFailuresTotal counts failed deletions of stale nftables
	// chains (labels: ip_family), as upstream's nftables mode.
	NFTablesCleanupFailuresTotal *prometheus.CounterVec
	// IPTablesRulesTotal is the number of rules owned (labels: ip_family,
	// table = "nat" | "filter"), in IPVS mode too: the rules of its chains.
	IPTablesRulesTotal *prometheus.GaugeVec
	// IPTablesRulesLastSync is the number of rules written by the last sync (labels: ip_family, table).
	IPTablesRulesLastSync *prometheus.GaugeVec

	// ConntrackReconcileLatency observes each conntrack cleanup (labels: ip_family).
	ConntrackReconcileLatency *prometheus.HistogramVec
	// ConntrackDeletedEntriesTotal counts deleted conntrack flows (labels: ip_family).
	ConntrackDeletedEntriesTotal *prometheus.CounterVec

	// RulesTamperedTotal (kproxy's own, kproxy_rules_tampered_total) counts
	// tamper checks found failing: a canary chain or a KUBE-SERVICES jump
	// gone, after which every rule is rewritten (labels: ip_family, check).
	RulesTamperedTotal *prometheus.CounterVec

	// IPVSSyncFailuresTotal (kproxy_ipvs_sync_failures_total) counts failed
	// IPVS-mode syncs by the kernel interface that failed (labels:
	// ip_family, seam = "ipvs" | "addresses" | "ipset" | "iptables-save" |
	// "iptables-restore").
	IPVSSyncFailuresTotal *prometheus.CounterVec
	// IPVSVirtualServers (kproxy_ipvs_virtual_servers) is the number of
	// IPVS virtual servers kproxy programmed (labels: ip_family).
	IPVSVirtualServers *prometheus.GaugeVec
	// IPVSBoundAddresses (kproxy_ipvs_bound_addresses) is the number of
	// service addresses bound to kube-ipvs0 (labels: ip_family).
	IPVSBoundAddresses *prometheus.GaugeVec

	registry *prometheus.Registry
}

// SyncLatencyBuckets are upstream's sync duration buckets: 1ms × 2^0..14.
func SyncLatencyBuckets() []float64 {
	return prometheus.ExponentialBuckets(0.001, 2, 15)
}

// NetworkProgrammingBuckets are upstream's buckets: 0.25, 0.5, 1..59 by 1,
// 60..115 by 5, 120..300 by 30 seconds.
func NetworkProgrammingBuckets() []float64 {
	return slices.Concat(
		prometheus.LinearBuckets(0.25, 0.25, 2),
		prometheus.LinearBuckets(1, 1, 59),
		prometheus.LinearBuckets(60, 5, 12),
		prometheus.LinearBuckets(120, 30, 7),
	)
}

// New creates all metrics and a registry holding them plus the Go and process collectors.
func New() *Metrics {
	m := newSyncMetrics()
	m.addChangeMetrics()
	m.addHealthMetrics()
	m.addIPTablesMetrics()
	m.addConntrackMetrics()
	m.addKproxyMetrics()
	m.registry = prometheus.NewRegistry()
	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.registry.MustRegister(m.collectors()...)
	return m
}

func newSyncMetrics() *Metrics {
	family := []string{LabelIPFamily}
	return &Metrics{
		SyncProxyRulesLatency: histogram("sync_proxy_rules_duration_seconds",
			"SyncProxyRules latency in seconds", SyncLatencyBuckets(), family),
		SyncFullProxyRulesLatency: histogram("sync_full_proxy_rules_duration_seconds",
			"SyncProxyRules latency in seconds for full resyncs", SyncLatencyBuckets(), family),
		SyncPartialProxyRulesLatency: histogram("sync_partial_proxy_rules_duration_seconds",
			"SyncProxyRules latency in seconds for partial resyncs", SyncLatencyBuckets(), family),
		SyncProxyRulesLastTimestamp: gauge("sync_proxy_rules_last_timestamp_seconds",
			"The last time proxy rules were successfully synced", family),
		SyncProxyRulesLastQueuedTimestamp: gauge("sync_proxy_rules_last_queued_timestamp_seconds",
			"The last time a sync of proxy rules was queued", family),
		NetworkProgrammingLatency: histogram("network_programming_duration_seconds",
			"In Cluster Network Programming Latency in seconds", NetworkProgrammingBuckets(), family),
	}
}

func (m *Metrics) addChangeMetrics() {
	m.EndpointChangesPending = prometheus.NewGauge(prometheus.GaugeOpts{Subsystem: Subsystem,
		Name: "sync_proxy_rules_endpoint_changes_pending", Help: "Pending proxy rules Endpoint changes"})
	m.EndpointChangesTotal = prometheus.NewCounter(prometheus.CounterOpts{Subsystem: Subsystem,
		Name: "sync_proxy_rules_endpoint_changes_total", Help: "Cumulative proxy rules Endpoint changes"})
	m.ServiceChangesPending = prometheus.NewGauge(prometheus.GaugeOpts{Subsystem: Subsystem,
		Name: "sync_proxy_rules_service_changes_pending", Help: "Pending proxy rules Service changes"})
	m.ServiceChangesTotal = prometheus.NewCounter(prometheus.CounterOpts{Subsystem: Subsystem,
		Name: "sync_proxy_rules_service_changes_total", Help: "Cumulative proxy rules Service changes"})
	m.NoLocalEndpointsTotal = gauge("sync_proxy_rules_no_local_endpoints_total",
		"Number of services with a Local traffic policy and no endpoints",
		[]string{LabelIPFamily, LabelTrafficPolicy})
}

func (m *Metrics) addHealthMetrics() {
	m.ProxyHealthzTotal = counter("proxy_healthz_total", "Cumulative proxy healthz HTTP status", []string{LabelCode})
	m.ProxyLivezTotal = counter("proxy_livez_total", "Cumulative proxy livez HTTP status", []string{LabelCode})
}

func (m *Metrics) addIPTablesMetrics() {
	family := []string{LabelIPFamily}
	familyTable := []string{LabelIPFamily, LabelTable}
	m.IPTablesRestoreFailuresTotal = counter("sync_proxy_rules_iptables_restore_failures_total",
		"Cumulative proxy iptables restore failures", family)
	m.IPTablesPartialRestoreFailuresTotal = counter("sync_proxy_rules_iptables_partial_restore_failures_total",
		"Cumulative proxy iptables partial restore failures", family)
	m.NFTablesSyncFailuresTotal = counter("sync_proxy_rules_nftables_sync_failures_total",
		"Cumulative proxy nftables sync failures", family)
	m.NFTablesCleanupFailuresTotal = counter("sync_proxy_rules_nftables_cleanup_failures_total",
		"Cumulative proxy nftables cleanup failures", family)
	m.IPTablesRulesTotal = gauge("sync_proxy_rules_iptables_total",
		"Total number of iptables rules owned by kube-proxy", familyTable)
	m.IPTablesRulesLastSync = gauge("sync_proxy_rules_iptables_last",
		"Number of iptables rules written by kube-proxy in last sync", familyTable)
}

func (m *Metrics) addConntrackMetrics() {
	family := []string{LabelIPFamily}
	m.ConntrackReconcileLatency = histogram("conntrack_reconciler_sync_duration_seconds",
		"ReconcileConntrackFlowsLatency latency in seconds", SyncLatencyBuckets(), family)
	m.ConntrackDeletedEntriesTotal = counter("conntrack_reconciler_deleted_entries_total",
		"Cumulative conntrack flows deleted by conntrack reconciler", family)
}

// addKproxyMetrics adds kproxy's own metrics (kproxy_<name>).
func (m *Metrics) addKproxyMetrics() {
	family := []string{LabelIPFamily}
	m.RulesTamperedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: KproxyNamespace,
		Name: "rules_tampered_total", Help: "Tamper checks (canary chains, jumps to KUBE-SERVICES) found failing, each followed by a full rewrite"},
		[]string{LabelIPFamily, LabelCheck})
	m.IPVSSyncFailuresTotal = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: KproxyNamespace,
		Name: "ipvs_sync_failures_total", Help: "Failed IPVS-mode syncs, by the kernel interface that failed (ipvs, addresses, ipset, iptables-save, iptables-restore)"},
		[]string{LabelIPFamily, LabelSeam})
	m.IPVSVirtualServers = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: KproxyNamespace,
		Name: "ipvs_virtual_servers", Help: "IPVS virtual servers programmed by kproxy after the last successful sync"}, family)
	m.IPVSBoundAddresses = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: KproxyNamespace,
		Name: "ipvs_bound_addresses", Help: "Service addresses bound to kube-ipvs0 after the last successful sync"}, family)
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		m.SyncProxyRulesLatency, m.SyncFullProxyRulesLatency, m.SyncPartialProxyRulesLatency,
		m.SyncProxyRulesLastTimestamp, m.SyncProxyRulesLastQueuedTimestamp, m.NetworkProgrammingLatency,
		m.EndpointChangesPending, m.EndpointChangesTotal, m.ServiceChangesPending, m.ServiceChangesTotal,
		m.NoLocalEndpointsTotal, m.ProxyHealthzTotal, m.ProxyLivezTotal,
		m.IPTablesRestoreFailuresTotal, m.IPTablesPartialRestoreFailuresTotal,
		m.NFTablesSyncFailuresTotal, m.NFTablesCleanupFailuresTotal,
		m.IPTablesRulesTotal, m.IPTablesRulesLastSync,
		m.ConntrackReconcileLatency, m.ConntrackDeletedEntriesTotal, m.RulesTamperedTotal,
		m.IPVSSyncFailuresTotal, m.IPVSVirtualServers, m.IPVSBoundAddresses,
	}
}

// Registry is the registry holding every metric of m plus the Go and process
// collectors. Callers may register more collectors (e.g. client-go's).
func (m *Metrics) Registry() *prometheus.Registry {
	return m.registry
}

// Handler serves the registry in the Prometheus exposition format, for /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// SinceInSeconds is the time elapsed since start, in seconds, as histograms expect.
func SinceInSeconds(start time.Time) float64 {
	return time.Since(start).Seconds()
}

func histogram(name, help string, buckets []float64, labels []string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Subsystem: Subsystem, Name: name, Help: help, Buckets: buckets,
	}, labels)
}

func gauge(name, help string, labels []string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Subsystem: Subsystem, Name: name, Help: help}, labels)
}

func counter(name, help string, labels []string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Subsystem: Subsystem, Name: name, Help: help}, labels)
}
