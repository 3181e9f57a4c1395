package peerbench

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestWaitFullWaitsForTheProxysSync: the table holds every service before
// the proxy's full sync is over (iptables mode inserts the jumps to
// KUBE-SERVICES in a later transaction), so waitFull must not return until
// the proxy reports the sync complete: a first-packet connection made
// earlier was never answered. Full is still the time the table was seen
// complete, and FullOwn the reported sync's duration.
func TestWaitFullWaitsForTheProxysSync(t *testing.T) {
	const services = 3
	scrapes, synced := 0, 2 // the sync is reported from the third scrape on
	counted := time.Duration(0)
	p := &proxyProcess{ns: "kpx-test", done: make(chan struct{}), start: time.Now()}
	r := &runner{
		opts: withDefaults(Options{Services: services, Timeout: time.Minute}),
		read: proxyReader{
			countServices: func(context.Context, string, string) (int, error) {
				if counted == 0 {
					counted = time.Since(p.start)
				}
				return services, nil
			},
			scrape: func(context.Context, string) (metrics, error) {
				scrapes++
				if scrapes <= synced {
					return metrics(""), nil
				}
				return metrics(fmt.Sprintf("%s_sum{ip_family=\"IPv4\"} 2.5\n%s_count{ip_family=\"IPv4\"} 1\n", metricFull, metricFull)), nil
			},
		},
	}
	full, own, err := r.waitFull(context.Background(), p, ModeIPTables)
	if err != nil {
		t.Fatal(err)
	}
	if scrapes != synced+1 {
		t.Errorf("waitFull returned after %d scrapes, want %d (the first with a completed full sync)", scrapes, synced+1)
	}
	if own != 2500*time.Millisecond {
		t.Errorf("FullOwn = %v, want the reported sync's 2.5s", own)
	}
	if full < counted || full > counted+50*time.Millisecond {
		t.Errorf("Full = %v, want the time the table was first seen complete (%v)", full, counted)
	}
}

func TestFullSynced(t *testing.T) {
	for _, c := range []struct {
		m    string
		want bool
	}{
		{"", false},
		{metricFull + `_count{ip_family="IPv4"} 0` + "\n", false},
		{metricFull + `_count{ip_family="IPv6"} 1` + "\n", false},
		{metricFull + `_count{ip_family="IPv4"} 1` + "\n", true},
	} {
		if got := fullSynced(metrics(c.m)); got != c.want {
			t.Errorf("fullSynced(%q) = %v, want %v", c.m, got, c.want)
		}
	}
}
