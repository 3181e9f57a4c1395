package metrics

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// touch gives every vector one child so that it appears in a scrape.
func touch(m *Metrics) {
	m.SyncProxyRulesLatency.WithLabelValues("IPv4").Observe(0.01)
	m.SyncFullProxyRulesLatency.WithLabelValues("IPv4").Observe(0.01)
	m.SyncPartialProxyRulesLatency.WithLabelValues("IPv4").Observe(0.01)
	m.SyncProxyRulesLastTimestamp.WithLabelValues("IPv4").SetToCurrentTime()
	m.SyncProxyRulesLastQueuedTimestamp.WithLabelValues("IPv4").SetToCurrentTime()
	m.NetworkProgrammingLatency.WithLabelValues("IPv4").Observe(1.5)
	m.EndpointChangesPending.Set(2)
	m.EndpointChangesTotal.Inc()
	m.ServiceChangesPending.Set(1)
	m.ServiceChangesTotal.Inc()
	m.NoLocalEndpointsTotal.WithLabelValues("IPv4", "internal").Set(3)
	m.ProxyHealthzTotal.WithLabelValues("200").Inc()
	m.ProxyLivezTotal.WithLabelValues("503").Inc()
	m.IPTablesRestoreFailuresTotal.WithLabelValues("IPv6").Inc()
	m.IPTablesPartialRestoreFailuresTotal.WithLabelValues("IPv6").Inc()
	m.NFTablesSyncFailuresTotal.WithLabelValues("IPv4").Inc()
	m.NFTablesCleanupFailuresTotal.WithLabelValues("IPv6").Inc()
	m.IPTablesRulesTotal.WithLabelValues("IPv4", "nat").Set(10)
	m.IPTablesRulesLastSync.WithLabelValues("IPv4", "filter").Set(4)
	m.ConntrackReconcileLatency.WithLabelValues("IPv4").Observe(0.002)
	m.ConntrackDeletedEntriesTotal.WithLabelValues("IPv4").Add(3)
	m.RulesTamperedTotal.WithLabelValues("IPv4", "nat/KUBE-PROXY-CANARY").Inc()
	m.IPVSSyncFailuresTotal.WithLabelValues("IPv4", "ipset").Inc()
	m.IPVSVirtualServers.WithLabelValues("IPv4").Set(3)
	m.IPVSBoundAddresses.WithLabelValues("IPv6").Set(2)
}

func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape status %d", rec.Code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse scrape: %v", err)
	}
	return families
}

func labelNames(f *dto.MetricFamily) []string {
	var names []string
	for _, l := range f.GetMetric()[0].GetLabel() {
		names = append(names, l.GetName())
	}
	slices.Sort(names)
	return names
}

func TestScrapeNamesTypesLabels(t *testing.T) {
	fam := []string{"ip_family"}
	tests := []struct {
		name   string
		typ    dto.MetricType
		labels []string
	}{
		{"kubeproxy_sync_proxy_rules_duration_seconds", dto.MetricType_HISTOGRAM, fam},
		{"kubeproxy_sync_full_proxy_rules_duration_seconds", dto.MetricType_HISTOGRAM, fam},
		{"kubeproxy_sync_partial_proxy_rules_duration_seconds", dto.MetricType_HISTOGRAM, fam},
		{"kubeproxy_sync_proxy_rules_last_timestamp_seconds", dto.MetricType_GAUGE, fam},
		{"kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds", dto.MetricType_GAUGE, fam},
		{"kubeproxy_network_programming_duration_seconds", dto.MetricType_HISTOGRAM, fam},
		{"kubeproxy_sync_proxy_rules_endpoint_changes_pending", dto.MetricType_GAUGE, nil},
		{"kubeproxy_sync_proxy_rules_endpoint_changes_total", dto.MetricType_COUNTER, nil},
		{"kubeproxy_sync_proxy_rules_service_changes_pending", dto.MetricType_GAUGE, nil},
		{"kubeproxy_sync_proxy_rules_service_changes_total", dto.MetricType_COUNTER, nil},
		{"kubeproxy_sync_proxy_rules_no_local_endpoints_total", dto.MetricType_GAUGE, []string{"ip_family", "traffic_policy"}},
		{"kubeproxy_proxy_healthz_total", dto.MetricType_COUNTER, []string{"code"}},
		{"kubeproxy_proxy_livez_total", dto.MetricType_COUNTER, []string{"code"}},
		{"kubeproxy_sync_proxy_rules_iptables_restore_failures_total", dto.MetricType_COUNTER, fam},
		{"kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total", dto.MetricType_COUNTER, fam},
		{"kubeproxy_sync_proxy_rules_nftables_sync_failures_total", dto.MetricType_COUNTER, fam},
		{"kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total", dto.MetricType_COUNTER, fam},
		{"kubeproxy_sync_proxy_rules_iptables_total", dto.MetricType_GAUGE, []string{"ip_family", "table"}},
		{"kubeproxy_sync_proxy_rules_iptables_last", dto.MetricType_GAUGE, []string{"ip_family", "table"}},
		{"kubeproxy_conntrack_reconciler_sync_duration_seconds", dto.MetricType_HISTOGRAM, fam},
		{"kubeproxy_conntrack_reconciler_deleted_entries_total", dto.MetricType_COUNTER, fam},
		{"kproxy_rules_tampered_total", dto.MetricType_COUNTER, []string{"check", "ip_family"}},
		{"kproxy_ipvs_sync_failures_total", dto.MetricType_COUNTER, []string{"ip_family", "seam"}},
		{"kproxy_ipvs_virtual_servers", dto.MetricType_GAUGE, fam},
		{"kproxy_ipvs_bound_addresses", dto.MetricType_GAUGE, fam},
		{"go_goroutines", dto.MetricType_GAUGE, nil},
		{"process_cpu_seconds_total", dto.MetricType_COUNTER, nil},
	}
	m := New()
	touch(m)
	families := scrape(t, m.Handler())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, ok := families[tt.name]
			if !ok {
				t.Fatalf("metric %s missing from scrape", tt.name)
			}
			if f.GetType() != tt.typ {
				t.Errorf("type = %v, want %v", f.GetType(), tt.typ)
			}
			if got := labelNames(f); !slices.Equal(got, tt.labels) {
				t.Errorf("labels = %v, want %v", got, tt.labels)
			}
		})
	}
}

func TestBuckets(t *testing.T) {
	m := New()
	touch(m)
	families := scrape(t, m.Handler())
	tests := []struct {
		name        string
		count       int
		first, last float64
	}{
		{"kubeproxy_sync_proxy_rules_duration_seconds", 15, 0.001, 16.384},
		{"kubeproxy_network_programming_duration_seconds", 2 + 59 + 12 + 7, 0.25, 300},
		{"kubeproxy_conntrack_reconciler_sync_duration_seconds", 15, 0.001, 16.384},
	}
	for _, tt := range tests {
		b := families[tt.name].GetMetric()[0].GetHistogram().GetBucket()
		// The text format carries the implicit +Inf bucket; upstream's list does not.
		b = b[:len(b)-1]
		if len(b) != tt.count || b[0].GetUpperBound() != tt.first || b[len(b)-1].GetUpperBound() != tt.last {
			t.Errorf("%s: %d buckets %v..%v, want %d buckets %v..%v", tt.name, len(b),
				b[0].GetUpperBound(), b[len(b)-1].GetUpperBound(), tt.count, tt.first, tt.last)
		}
	}
}

func TestInstancesAreIndependent(t *testing.T) {
	a, b := New(), New()
	a.ServiceChangesTotal.Add(5)
	got := scrape(t, b.Handler())["kubeproxy_sync_proxy_rules_service_changes_total"].GetMetric()[0].GetCounter().GetValue()
	if got != 0 {
		t.Errorf("second instance saw %v service changes, want 0", got)
	}
}
