package healthcheck

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

type fakeProxy struct{ healthy atomic.Bool }

func (p *fakeProxy) Healthy() bool { return p.healthy.Load() }

func nsn(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}

type probe struct {
	code   int
	weight string
	body   string
}

func probePort(t *testing.T, port int32) (probe, error) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/anything", port))
	if err != nil {
		return probe{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return probe{}, err
	}
	return probe{resp.StatusCode, resp.Header.Get("X-Load-Balancing-Endpoint-Weight"), string(b)}, nil
}

func mustProbe(t *testing.T, port int32) probe {
	t.Helper()
	p, err := probePort(t, port)
	if err != nil {
		t.Fatalf("probe port %d: %v", port, err)
	}
	return p
}

func isClosed(port int32) bool {
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return true
	}
	conn.Close()
	return false
}

func newServiceHealth(t *testing.T, proxy ProxyHealthChecker) *ServiceHealth {
	s := NewServiceHealth(ServiceHealthOptions{
		Addresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		Proxy:     proxy,
	})
	t.Cleanup(s.Close)
	return s
}

func TestServiceHealthResponses(t *testing.T) {
	proxy := &fakeProxy{}
	proxy.healthy.Store(true)
	s := newServiceHealth(t, proxy)
	a := nsn("ns1", "svc-a")
	port := int32(freePort(t))
	if err := s.SyncServices(map[types.NamespacedName]int32{a: port}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		count   int
		healthy bool
		want    probe
	}{
		{"no local endpoints", 0, true, probe{503, "0", body("ns1", "svc-a", 0, true)}},
		{"local endpoints", 2, true, probe{200, "2", body("ns1", "svc-a", 2, true)}},
		{"proxy unhealthy", 2, false, probe{503, "2", body("ns1", "svc-a", 2, false)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.SyncEndpoints(map[types.NamespacedName]int{a: tt.count})
			proxy.healthy.Store(tt.healthy)
			if got := mustProbe(t, port); got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// body is upstream's exact document: tab-indented, no trailing newline.
func body(ns, name string, n int, healthy bool) string {
	return fmt.Sprintf("{\n\t\"service\": {\n\t\t\"namespace\": %q,\n\t\t\"name\": %q\n\t},\n"+
		"\t\"localEndpoints\": %d,\n\t\"serviceProxyHealthy\": %v\n}", ns, name, n, healthy)
}

func TestServiceHealthEndpointsBeforeServices(t *testing.T) {
	s := newServiceHealth(t, nil)
	a := nsn("ns1", "svc-a")
	s.SyncEndpoints(map[types.NamespacedName]int{a: 1})
	port := int32(freePort(t))
	if err := s.SyncServices(map[types.NamespacedName]int32{a: port}); err != nil {
		t.Fatal(err)
	}
	if got := mustProbe(t, port); got.code != 200 || got.weight != "1" {
		t.Errorf("got %+v, want 200 with weight 1", got)
	}
	s.SyncEndpoints(nil)
	if got := mustProbe(t, port); got.code != 503 || got.weight != "0" {
		t.Errorf("after endpoints vanish got %+v, want 503 with weight 0", got)
	}
}

func TestServiceHealthOpensAndCloses(t *testing.T) {
	s := newServiceHealth(t, nil)
	a, b := nsn("ns1", "a"), nsn("ns1", "b")
	pa, pb, pa2 := int32(freePort(t)), int32(freePort(t)), int32(freePort(t))

	if err := s.SyncServices(map[types.NamespacedName]int32{a: pa, b: pb}); err != nil {
		t.Fatal(err)
	}
	mustProbe(t, pa)
	mustProbe(t, pb)

	// Port change for a, b removed.
	if err := s.SyncServices(map[types.NamespacedName]int32{a: pa2}); err != nil {
		t.Fatal(err)
	}
	if !isClosed(pa) || !isClosed(pb) {
		t.Errorf("old ports still open: %d closed=%v, %d closed=%v", pa, isClosed(pa), pb, isClosed(pb))
	}
	if got := mustProbe(t, pa2); !strings.Contains(got.body, `"name": "a"`) {
		t.Errorf("new port answers %q, want service a", got.body)
	}
	if got := s.Ports(); len(got) != 1 || got[a] != pa2 {
		t.Errorf("Ports = %v, want {a: %d}", got, pa2)
	}

	// The same port can be reused immediately after removal.
	if err := s.SyncServices(nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SyncServices(map[types.NamespacedName]int32{b: pa2}); err != nil {
		t.Fatalf("reopen a just-closed port: %v", err)
	}
	s.Close()
	if !isClosed(pa2) {
		t.Error("port open after Close")
	}
}

func TestServiceHealthListenFailureIsolated(t *testing.T) {
	s := newServiceHealth(t, nil)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	busyPort := int32(busy.Addr().(*net.TCPAddr).Port)
	a, b := nsn("ns1", "blocked"), nsn("ns2", "fine")
	pb := int32(freePort(t))

	err = s.SyncServices(map[types.NamespacedName]int32{a: busyPort, b: pb})
	if err == nil || !strings.Contains(err.Error(), "ns1/blocked") || strings.Contains(err.Error(), "ns2/fine") {
		t.Fatalf("SyncServices error = %v, want one naming only ns1/blocked", err)
	}
	mustProbe(t, pb)
	if _, ok := s.Ports()[a]; ok {
		t.Error("failed service recorded as served")
	}

	// Retried on the next sync once the port is free.
	busy.Close()
	if err := s.SyncServices(map[types.NamespacedName]int32{a: busyPort, b: pb}); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if got := mustProbe(t, busyPort); !strings.Contains(got.body, `"name": "blocked"`) {
		t.Errorf("retried service answers %q", got.body)
	}
}
