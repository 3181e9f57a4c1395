package healthcheck

import (
	"net/http"
	"net/http/pprof"

	"github.com/kproxy/kproxy/proxier/metrics"
)

// MetricsMux returns the metrics server's handler (upstream default bind
// 127.0.0.1:10249):
//
//   - /metrics: m's registry in the Prometheus text format;
//   - /healthz: plain "ok" (the server is up; not the proxy's health);
//   - /proxyMode: the mode name as plain text ("iptables", "ipvs");
//   - /configz: configz served verbatim as JSON. Upstream's document is
//     {"kubeproxy.config.k8s.io": <KubeProxyConfiguration>}; the caller builds it;
//   - /debug/pprof/* when enableProfiling.
func MetricsMux(m *metrics.Metrics, proxyMode string, configz []byte, enableProfiling bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writePlain(w, "ok")
	})
	mux.HandleFunc("/proxyMode", func(w http.ResponseWriter, _ *http.Request) {
		writePlain(w, proxyMode)
	})
	body := append([]byte(nil), configz...)
	mux.HandleFunc("/configz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(body)
	})
	if enableProfiling {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

func writePlain(w http.ResponseWriter, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write([]byte(s))
}
