// Package healthcheck implements kproxy's node-level HTTP servers with
// upstream kube-proxy's wire behaviour (pkg/proxy/healthcheck and
// cmd/kube-proxy's metrics server), because cloud load balancers and
// operators probe them directly:
//
//   - ProxyHealth: the healthz server (default :10256). /healthz is 200 iff
//     every IP family's proxier is healthy and the node is eligible; /livez
//     ignores node eligibility. A family is unhealthy iff an update was
//     queued (QueuedUpdate) and not applied (Updated) within 2 × syncPeriod.
//     Body and status codes match upstream's JSON; responses are counted in
//     kubeproxy_proxy_healthz_total / kubeproxy_proxy_livez_total.
//   - ServiceHealth: one HTTP server per ETP=Local LoadBalancer Service on its
//     healthCheckNodePort, answering with the number of local ready endpoints
//     and X-Load-Balancing-Endpoint-Weight; 200 iff that number is > 0 and the
//     proxy is healthy.
//   - MetricsMux: the metrics server's paths (/metrics, /healthz, /proxyMode,
//     /configz, optional pprof).
//
// The package never logs: listener failures are returned (naming the Service)
// and the caller decides how to report them. Time comes from an injected
// clock so tests need no sleeps.
package healthcheck
