package ipvs_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kproxy/kproxy/ipvs"
	"github.com/kproxy/kproxy/ipvs/addresses"
	"github.com/kproxy/kproxy/proxier/metrics"
	pt "github.com/kproxy/kproxy/proxier/proxiertest"
)

func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if c := d.GetCounter(); c != nil {
		return c.GetValue()
	}
	return d.GetGauge().GetValue()
}

// failingLocal is an addresses.Manager whose Local fails.
type failingLocal struct{ addresses.Manager }

func (failingLocal) Local() ([]netip.Addr, error) { return nil, errors.New("netlink: boom") }

// TestFailuresAreCountedByTheSeamThatFailed: IPVS mode counts every failed
// sync in kproxy_ipvs_sync_failures_total under the seam that failed, and
// upstream's restore-failure counter only when iptables-restore failed.
func TestFailuresAreCountedByTheSeamThatFailed(t *testing.T) {
	tests := []struct {
		name        string
		seam        ipvs.Seam
		fail        func(*netfilterWorld)
		wantRestore float64
	}{
		{"ipset restore", ipvs.SeamIPSet, func(nw *netfilterWorld) { nw.sets.FailRestore = errors.New("ipset: boom") }, 0},
		{"iptables-save", ipvs.SeamIPTablesSave, func(nw *netfilterWorld) { nw.ipt.failSave = errors.New("iptables-save: boom") }, 0},
		{"iptables-restore", ipvs.SeamIPTablesRestore, func(nw *netfilterWorld) { nw.ipt.fail = errors.New("iptables-restore: boom") }, 1},
		{"virtual servers", ipvs.SeamIPVS, func(nw *netfilterWorld) { nw.opts.Scheduler = "no-such-scheduler"; nw.restart() }, 0},
		{"addresses", ipvs.SeamAddresses, func(nw *netfilterWorld) { nw.opts.Addresses = failingLocal{nw.a}; nw.restart() }, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := metrics.New()
			nw := newNetfilterWorld(t, func(o *ipvs.Options) { o.Metrics = m })
			tc.fail(nw)
			_, err := nw.p.Sync(context.Background(), nw.next(e(svc("a", "172.30.0.1"), ep("10.244.1.1"))))
			var se *ipvs.SeamError
			if !errors.As(err, &se) || se.Seam != tc.seam {
				t.Fatalf("Sync error = %v, want one at seam %s", err, tc.seam)
			}
			for _, s := range []ipvs.Seam{ipvs.SeamIPVS, ipvs.SeamAddresses, ipvs.SeamIPSet, ipvs.SeamIPTablesSave, ipvs.SeamIPTablesRestore} {
				want := 0.0
				if s == tc.seam {
					want = 1
				}
				if got := value(t, m.IPVSSyncFailuresTotal.WithLabelValues("IPv4", string(s))); got != want {
					t.Errorf("kproxy_ipvs_sync_failures_total{seam=%q} = %v, want %v", s, got, want)
				}
			}
			if got := value(t, m.IPTablesRestoreFailuresTotal.WithLabelValues("IPv4")); got != tc.wantRestore {
				t.Errorf("kubeproxy_sync_proxy_rules_iptables_restore_failures_total = %v, want %v", got, tc.wantRestore)
			}
		})
	}
}

// TestSuccessfulSyncReportsWhatIsProgrammed: the result counts only the
// iptables rules written (nat, filter); the virtual servers and kube-ipvs0
// addresses go to kproxy's gauges, also after a partial sync that writes
// no rules.
func TestSuccessfulSyncReportsWhatIsProgrammed(t *testing.T) {
	m := metrics.New()
	nw := newNetfilterWorld(t, func(o *ipvs.Options) { o.Metrics = m })
	a := e(svc("a", "172.30.0.1", pt.NodePort(30080), pt.ExternalIPs("203.0.113.1")), ep("10.244.1.1"))
	res := nw.sync(nw.next(a))
	written := map[string]int{}
	table := ""
	for l := range strings.Lines(nw.ipt.last) {
		switch {
		case strings.HasPrefix(l, "*"):
			table = strings.TrimSpace(l[1:])
		case strings.HasPrefix(l, "-A "):
			written[table]++
		}
	}
	nat, filter := written["nat"], written["filter"]
	if len(res.Rules) != 2 || nat == 0 || filter == 0 || res.Rules["nat"] != nat || res.Rules["filter"] != filter {
		t.Errorf("Rules = %v, want nat %d and filter %d, nothing else", res.Rules, nat, filter)
	}
	b := e(svc("b", "172.30.0.2"), ep("10.244.1.2"))
	res = nw.sync(nw.next(a, b))
	if res.Rules["nat"] != nat || res.Rules["filter"] != filter {
		t.Errorf("partial sync: Rules = %v, want the rules still in place (nat %d, filter %d)", res.Rules, nat, filter)
	}
	// a: ClusterIP, external IP, NodePort on the node IP; b: ClusterIP.
	if got := value(t, m.IPVSVirtualServers.WithLabelValues("IPv4")); got != 4 {
		t.Errorf("kproxy_ipvs_virtual_servers = %v, want 4", got)
	}
	if got := value(t, m.IPVSBoundAddresses.WithLabelValues("IPv4")); got != 3 {
		t.Errorf("kproxy_ipvs_bound_addresses = %v, want 3", got)
	}
}
