package peerbench

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// Metric names the benchmark reads (upstream's, which kproxy keeps).
const (
	metricFull     = "kubeproxy_sync_full_proxy_rules_duration_seconds"
	metricPartial  = "kubeproxy_sync_partial_proxy_rules_duration_seconds"
	metricSync     = "kubeproxy_sync_proxy_rules_duration_seconds"
	metricLastSync = "kubeproxy_sync_proxy_rules_last_timestamp_seconds"
	// familyLabel selects the IPv4 proxier's samples: the benchmark's
	// services are IPv4, and a dual-stack proxy's IPv6 syncs are empty.
	familyLabel = `ip_family="IPv4"`
)

// metrics is one scrape of a proxy's /metrics.
type metrics string

// scrape reads /metrics from inside ns (the proxy binds 127.0.0.1:10249).
func scrape(ctx context.Context, ns string) (metrics, error) {
	out, err := inNetns(ctx, ns, "curl", "-sf", "--max-time", "5", "http://127.0.0.1:10249/metrics")
	return metrics(out), err
}

// saveHeapProfile writes the proxy's live heap (after a collection) from
// its /debug/pprof (enableProfiling) to path.
func saveHeapProfile(ctx context.Context, ns, path string) error {
	_, err := inNetns(ctx, ns, "curl", "-sf", "--max-time", "30", "-o", path, "http://127.0.0.1:10249/debug/pprof/heap?gc=1")
	return err
}

// value sums the IPv4 samples of name (a full sample name such as
// "..._sum"); ok is false when there is none.
func (m metrics) value(name string) (v float64, ok bool) {
	for line := range strings.Lines(string(m)) {
		fields := strings.Fields(line)
		if len(fields) != 2 || !strings.HasPrefix(fields[0], name+"{") || !strings.Contains(fields[0], familyLabel) {
			continue
		}
		if f, err := strconv.ParseFloat(fields[1], 64); err == nil {
			v, ok = v+f, true
		}
	}
	return v, ok
}

// histogram is a histogram's IPv4 sum and count at one scrape.
type histogram struct{ sum, count float64 }

func (m metrics) histogram(name string) histogram {
	sum, _ := m.value(name + "_sum")
	count, _ := m.value(name + "_count")
	return histogram{sum, count}
}

// meanSince is the mean observation between an earlier scrape and h, and
// how many there were.
func (h histogram) meanSince(before histogram) (time.Duration, int) {
	n := h.count - before.count
	if n <= 0 {
		return 0, 0
	}
	return time.Duration((h.sum - before.sum) / n * float64(time.Second)), int(n)
}

// lastSync is the IPv4 proxier's last completed sync.
func (m metrics) lastSync() (time.Time, bool) {
	v, ok := m.value(metricLastSync)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(0, int64(v*float64(time.Second))), true
}
