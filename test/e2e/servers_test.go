package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// TestHealthAndMetricsServers checks kproxy's node servers after a sync:
// /healthz and /livez on 10256 (also from off the node, as cloud load
// balancers probe it), /metrics and /proxyMode on 127.0.0.1:10249; and that
// /healthz fails but /livez passes once the Node object is gone.
func TestHealthAndMetricsServers(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode string) {
		e := newEnv(t, envOptions{Mode: mode})
		w := e.w
		svc := service("web", "10.96.0.10")
		objs := []any{svc, slice(svc, "a", endpoint(w, w.Pods[0]))}
		e.start(objs...)
		e.waitSynced()

		for _, c := range []struct{ ns, url string }{
			{w.Node, "http://127.0.0.1:10256/healthz"},
			{w.Client, "http://" + w.Addrs.NodeV4.String() + ":10256/healthz"},
		} {
			e.eventually(settleTimeout, c.url+" healthy", func() error {
				return e.checkHealth(c.ns, c.url, true, true)
			})
		}
		if err := e.checkHealth(w.Node, "http://127.0.0.1:10256/livez", true, false); err != nil {
			t.Errorf("/livez: %v", err)
		}

		if code, body := e.curl(w.Node, "http://127.0.0.1:10249/proxyMode"); code != 200 || strings.TrimSpace(body) != mode {
			t.Errorf("/proxyMode = %d %q, want 200 %q", code, body, mode)
		}
		code, metrics := e.curl(w.Node, "http://127.0.0.1:10249/metrics")
		if code != 200 {
			t.Fatalf("/metrics: HTTP %d", code)
		}
		if !strings.Contains(metrics, "kubeproxy_sync_proxy_rules_duration_seconds_count") {
			t.Errorf("/metrics lacks kubeproxy_sync_proxy_rules_duration_seconds:\n%s", metrics)
		}
		if err := checkRecentTimestamp(metrics, "kubeproxy_sync_proxy_rules_last_timestamp_seconds"); err != nil {
			t.Errorf("/metrics: %v", err)
		}

		e.writeManifest(manifestText(t, objs...)) // no Node object any more
		e.eventually(settleTimeout, "/healthz fails without a Node", func() error {
			return e.checkHealth(w.Node, "http://127.0.0.1:10256/healthz", false, true)
		})
		if err := e.checkHealth(w.Node, "http://127.0.0.1:10256/livez", true, false); err != nil {
			t.Errorf("/livez must ignore node eligibility: %v", err)
		}
	})
}

// curl fetches url from inside ns and returns the HTTP status and body.
func (e *env) curl(ns, url string) (int, string) {
	e.t.Helper()
	out := e.run(ns, "curl", "-sS", "--max-time", "5", "-w", "\n%{http_code}", url)
	i := strings.LastIndex(out, "\n")
	code, err := strconv.Atoi(strings.TrimSpace(out[i+1:]))
	if err != nil {
		e.t.Fatalf("curl %s: no status code in %q", url, out)
	}
	return code, out[:i]
}

// checkHealth checks a /healthz or /livez answer: 200 with healthy true
// when ok, else 503; nodeEligible present only for /healthz.
func (e *env) checkHealth(ns, url string, ok, healthz bool) error {
	code, body := e.curl(ns, url)
	wantCode := 200
	if !ok {
		wantCode = 503
	}
	if code != wantCode {
		return fmt.Errorf("HTTP %d, want %d: %s", code, wantCode, body)
	}
	var st struct {
		LastUpdated  *time.Time `json:"lastUpdated"`
		CurrentTime  *time.Time `json:"currentTime"`
		NodeEligible *bool      `json:"nodeEligible"`
		Healthy      *bool      `json:"healthy"`
		Status       map[string]struct {
			Healthy *bool `json:"healthy"`
		} `json:"status"`
	}
	dec := json.NewDecoder(strings.NewReader(body))
	if err := dec.Decode(&st); err != nil {
		return fmt.Errorf("body %q: %w", body, err)
	}
	switch {
	case st.LastUpdated == nil || st.CurrentTime == nil || st.Healthy == nil:
		return fmt.Errorf("body lacks lastUpdated, currentTime or healthy: %s", body)
	case healthz && st.NodeEligible == nil:
		return fmt.Errorf("/healthz body lacks nodeEligible: %s", body)
	case !healthz && st.NodeEligible != nil:
		return fmt.Errorf("/livez body must not have nodeEligible: %s", body)
	case healthz && *st.NodeEligible != ok:
		return fmt.Errorf("nodeEligible = %v, want %v: %s", *st.NodeEligible, ok, body)
	case !*st.Healthy:
		return fmt.Errorf("proxier not healthy: %s", body)
	case st.Status["IPv4"].Healthy == nil || !*st.Status["IPv4"].Healthy:
		return fmt.Errorf("status.IPv4.healthy is not true: %s", body)
	}
	return nil
}

// checkRecentTimestamp checks that metric has an IPv4 sample within the last ten minutes.
func checkRecentTimestamp(metrics, name string) error {
	for _, line := range strings.Split(metrics, "\n") {
		if !strings.HasPrefix(line, name) || !strings.Contains(line, "IPv4") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return fmt.Errorf("%q: %w", line, err)
		}
		if age := time.Since(time.Unix(int64(v), 0)); age < -time.Minute || age > 10*time.Minute {
			return fmt.Errorf("%q is %v old", line, age)
		}
		return nil
	}
	return fmt.Errorf("no IPv4 sample of %s", name)
}

// manifestText renders objs as a multi-document YAML file (without the Node object).
func manifestText(t *testing.T, objs ...any) string {
	t.Helper()
	var buf bytes.Buffer
	for _, o := range objs {
		b, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		buf.WriteString("---\n")
		buf.Write(b)
	}
	return buf.String()
}
