package healthcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kproxy/kproxy/proxier/metrics"
)

const syncPeriod = 30 * time.Second

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time       { return c.t }
func (c *fakeClock) Step(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock            { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }
func newHealth(c *fakeClock, m *metrics.Metrics) *ProxyHealth {
	return NewProxyHealth(ProxyHealthOptions{SyncPeriod: syncPeriod, Metrics: m, Now: c.Now})
}

type nodeOpt func(*v1.Node)

func node(opts ...nodeOpt) *v1.Node {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}
	for _, o := range opts {
		o(n)
	}
	return n
}

func deleting(n *v1.Node) {
	ts := metav1.NewTime(time.Unix(1, 0))
	n.DeletionTimestamp = &ts
}

func tainted(key string) nodeOpt {
	return func(n *v1.Node) {
		n.Spec.Taints = append(n.Spec.Taints, v1.Taint{Key: key, Effect: v1.TaintEffectNoSchedule})
	}
}

func get(t *testing.T, h http.Handler, path string) (int, Status) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s Content-Type = %q", path, ct)
	}
	var st Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("%s body %q: %v", path, rec.Body.String(), err)
	}
	return rec.Code, st
}

func TestNodeEligibility(t *testing.T) {
	tests := []struct {
		name string
		node *v1.Node
		want bool
	}{
		{"missing node", nil, false},
		{"plain node", node(), true},
		{"being deleted", node(deleting), false},
		{"autoscaler taint", node(tainted(ToBeDeletedTaint)), false},
		{"other taint", node(tainted("example.com/other")), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeClock()
			h := newHealth(c, nil)
			h.SyncNode(tt.node)
			if got := h.NodeEligible(); got != tt.want {
				t.Errorf("NodeEligible = %v, want %v", got, tt.want)
			}
			wantCode := http.StatusServiceUnavailable
			if tt.want {
				wantCode = http.StatusOK
			}
			code, st := get(t, h.Handler(), "/healthz")
			if code != wantCode || st.NodeEligible == nil || *st.NodeEligible != tt.want {
				t.Errorf("/healthz = %d nodeEligible %v, want %d %v", code, st.NodeEligible, wantCode, tt.want)
			}
			// /livez ignores the node.
			if code, st := get(t, h.Handler(), "/livez"); code != http.StatusOK || st.NodeEligible != nil {
				t.Errorf("/livez = %d nodeEligible %v, want 200 and no nodeEligible", code, st.NodeEligible)
			}
		})
	}
}

func TestHealthTimeout(t *testing.T) {
	type step struct {
		do       func(h *ProxyHealth, c *fakeClock)
		healthy  bool
		families map[v1.IPFamily]bool
	}
	queued := func(f v1.IPFamily) func(*ProxyHealth, *fakeClock) {
		return func(h *ProxyHealth, _ *fakeClock) { h.QueuedUpdate(f) }
	}
	updated := func(f v1.IPFamily) func(*ProxyHealth, *fakeClock) {
		return func(h *ProxyHealth, _ *fakeClock) { h.Updated(f) }
	}
	wait := func(d time.Duration) func(*ProxyHealth, *fakeClock) {
		return func(_ *ProxyHealth, c *fakeClock) { c.Step(d) }
	}
	v4, v6 := v1.IPv4Protocol, v1.IPv6Protocol
	tests := []struct {
		name  string
		steps []step
	}{
		{"starting up is healthy", []step{
			{queued(v4), true, map[v1.IPFamily]bool{}},
			{wait(time.Hour), true, map[v1.IPFamily]bool{}},
		}},
		{"late update turns unhealthy at 2x sync period", []step{
			{updated(v4), true, map[v1.IPFamily]bool{v4: true}},
			{queued(v4), true, map[v1.IPFamily]bool{v4: true}},
			{wait(2*syncPeriod - time.Nanosecond), true, map[v1.IPFamily]bool{v4: true}},
			{wait(time.Nanosecond), false, map[v1.IPFamily]bool{v4: false}},
			{updated(v4), true, map[v1.IPFamily]bool{v4: true}},
		}},
		{"only the oldest queued update counts", []step{
			{updated(v4), true, map[v1.IPFamily]bool{v4: true}},
			{queued(v4), true, map[v1.IPFamily]bool{v4: true}},
			{wait(syncPeriod), true, map[v1.IPFamily]bool{v4: true}},
			{queued(v4), true, map[v1.IPFamily]bool{v4: true}},
			{wait(syncPeriod), false, map[v1.IPFamily]bool{v4: false}},
		}},
		{"one stuck family makes the proxy unhealthy", []step{
			{updated(v4), true, map[v1.IPFamily]bool{v4: true}},
			{updated(v6), true, map[v1.IPFamily]bool{v4: true, v6: true}},
			{queued(v6), true, map[v1.IPFamily]bool{v4: true, v6: true}},
			{wait(3 * syncPeriod), false, map[v1.IPFamily]bool{v4: true, v6: false}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newFakeClock()
			h := newHealth(c, nil)
			for i, s := range tt.steps {
				s.do(h, c)
				st := h.Health()
				if st.Healthy != s.healthy || h.Healthy() != s.healthy {
					t.Fatalf("step %d: healthy = %v, want %v", i, st.Healthy, s.healthy)
				}
				if len(st.Status) != len(s.families) {
					t.Fatalf("step %d: status %v, want %v", i, st.Status, s.families)
				}
				for f, want := range s.families {
					if st.Status[f].Healthy != want {
						t.Errorf("step %d: %s healthy = %v, want %v", i, f, st.Status[f].Healthy, want)
					}
				}
			}
		})
	}
}

func TestResponseBodyAndMetrics(t *testing.T) {
	c := newFakeClock()
	m := metrics.New()
	h := newHealth(c, m)
	h.SyncNode(node())
	h.Updated(v1.IPv4Protocol)
	updatedAt := c.Now()
	c.Step(time.Minute)

	code, st := get(t, h.Handler(), "/healthz")
	if code != http.StatusOK || !st.Healthy || !st.LastUpdated.Equal(c.Now()) || !st.CurrentTime.Equal(c.Now()) {
		t.Errorf("healthy /healthz = %d %+v; want 200, lastUpdated = currentTime = now", code, st)
	}
	if !st.Status[v1.IPv4Protocol].LastUpdated.Equal(updatedAt) {
		t.Errorf("IPv4 lastUpdated = %v, want %v", st.Status[v1.IPv4Protocol].LastUpdated, updatedAt)
	}

	h.QueuedUpdate(v1.IPv4Protocol)
	c.Step(3 * syncPeriod)
	code, st = get(t, h.Handler(), "/healthz")
	if code != http.StatusServiceUnavailable || st.Healthy || !st.LastUpdated.Equal(updatedAt) {
		t.Errorf("unhealthy /healthz = %d %+v; want 503 with the real lastUpdated", code, st)
	}
	if code, _ := get(t, h.Handler(), "/livez"); code != http.StatusServiceUnavailable {
		t.Errorf("/livez = %d, want 503", code)
	}

	counts := map[string]float64{
		"healthz 200": counterValue(t, m.ProxyHealthzTotal.WithLabelValues("200")),
		"healthz 503": counterValue(t, m.ProxyHealthzTotal.WithLabelValues("503")),
		"livez 503":   counterValue(t, m.ProxyLivezTotal.WithLabelValues("503")),
		"livez 200":   counterValue(t, m.ProxyLivezTotal.WithLabelValues("200")),
	}
	want := map[string]float64{"healthz 200": 1, "healthz 503": 1, "livez 503": 1, "livez 200": 0}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("counters = %v, want %v", counts, want)
	}
}

func TestJSONFieldNames(t *testing.T) {
	c := newFakeClock()
	h := newHealth(c, nil)
	h.Updated(v1.IPv6Protocol)
	rec := httptest.NewRecorder()
	h.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	var raw map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"lastUpdated", "currentTime", "nodeEligible", "healthy", "status"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("body %s lacks %q", rec.Body.String(), k)
		}
	}
	fam, _ := raw["status"].(map[string]any)["IPv6"].(map[string]any)
	if _, ok := fam["lastUpdated"]; !ok || fam["healthy"] != true {
		t.Errorf("status.IPv6 = %v, want lastUpdated and healthy:true", fam)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServeStopsOnContext(t *testing.T) {
	h := NewProxyHealth(ProxyHealthOptions{SyncPeriod: syncPeriod})
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Serve(ctx, addr) }()
	waitFor(t, "server up", func() bool {
		resp, err := http.Get("http://" + addr + "/livez")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Error("port still open after shutdown")
	}
}

func TestServeReportsListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	h := NewProxyHealth(ProxyHealthOptions{SyncPeriod: syncPeriod})
	err = h.Serve(context.Background(), ln.Addr().String())
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Fatalf("Serve on a busy port = %v, want a wrapped *net.OpError", err)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var out dto.Metric
	if err := c.Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.GetCounter().GetValue()
}
