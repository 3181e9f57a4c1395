package healthcheck

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kproxy/kproxy/proxier/metrics"
)

func TestMetricsMux(t *testing.T) {
	configz := `{"kubeproxy.config.k8s.io":{"mode":"iptables"}}`
	tests := []struct {
		name      string
		profiling bool
		path      string
		code      int
		ctype     string
		body      string // exact body, or prefix/substring when contains is set
		contains  bool
	}{
		{"healthz", false, "/healthz", 200, "text/plain; charset=utf-8", "ok", false},
		{"proxyMode", false, "/proxyMode", 200, "text/plain; charset=utf-8", "iptables", false},
		{"configz", false, "/configz", 200, "application/json", configz, false},
		{"metrics", false, "/metrics", 200, "", "kubeproxy_sync_proxy_rules_service_changes_total", true},
		{"pprof off", false, "/debug/pprof/", 404, "", "", true},
		{"pprof on", true, "/debug/pprof/", 200, "", "goroutine", true},
		{"pprof cmdline", true, "/debug/pprof/cmdline", 200, "", "", true},
	}
	m := metrics.New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := MetricsMux(m, "iptables", []byte(configz), tt.profiling)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != tt.code {
				t.Fatalf("status %d, want %d", rec.Code, tt.code)
			}
			if tt.ctype != "" && rec.Header().Get("Content-Type") != tt.ctype {
				t.Errorf("Content-Type %q, want %q", rec.Header().Get("Content-Type"), tt.ctype)
			}
			got := rec.Body.String()
			if tt.contains && !strings.Contains(got, tt.body) || !tt.contains && got != tt.body {
				t.Errorf("body %.200q, want %q (contains=%v)", got, tt.body, tt.contains)
			}
		})
	}
}
