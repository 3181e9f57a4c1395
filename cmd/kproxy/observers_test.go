package main

import (
	"context"
	"errors"
	"testing"

	dto "github.com/prometheus/client_model/go"
	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/metrics"
)

// TestFailedSyncCountsAsRestoreFailureOnlyWhereItIsOne: in iptables mode a
// failed sync is a failed iptables-restore (upstream counts it so); in IPVS
// mode the Proxier counts its own failures by what failed, so the observer
// must not count an ipset or netlink failure as a restore failure.
func TestFailedSyncCountsAsRestoreFailureOnlyWhereItIsOne(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		failedSyncIsRestore   bool
		wantRestore, wantPart float64
	}{
		{"iptables mode", true, 1, 1},
		{"ipvs mode", false, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := metrics.New()
			o := healthObserver{metrics: m, failedSyncIsRestore: tc.failedSyncIsRestore}
			snap := &proxier.Snapshot{Family: v1.IPv4Protocol}
			o.Synced(context.Background(), snap, proxier.SyncResult{}, 0, errors.New("boom"))
			for name, c := range map[string]struct {
				got  func() (*dto.Metric, error)
				want float64
			}{
				"restore failures":         {counterOf(m.IPTablesRestoreFailuresTotal.WithLabelValues("IPv4")), tc.wantRestore},
				"partial restore failures": {counterOf(m.IPTablesPartialRestoreFailuresTotal.WithLabelValues("IPv4")), tc.wantPart},
			} {
				d, err := c.got()
				if err != nil {
					t.Fatal(err)
				}
				if got := d.GetCounter().GetValue(); got != c.want {
					t.Errorf("%s = %v, want %v", name, got, c.want)
				}
			}
		})
	}
}

func counterOf(c interface{ Write(*dto.Metric) error }) func() (*dto.Metric, error) {
	return func() (*dto.Metric, error) {
		var d dto.Metric
		return &d, c.Write(&d)
	}
}
