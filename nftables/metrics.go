package nftables

import "github.com/prometheus/client_golang/prometheus"

func (p *Proxier) metricsSyncFailures() *prometheus.CounterVec {
	if p.metrics == nil {
		return nil
	}
	return p.metrics.NFTablesSyncFailuresTotal
}

func (p *Proxier) metricsCleanupFailures() *prometheus.CounterVec {
	if p.metrics == nil {
		return nil
	}
	return p.metrics.NFTablesCleanupFailuresTotal
}

func (p *Proxier) countFailure(c *prometheus.CounterVec) {
	if c != nil {
		c.WithLabelValues(string(p.family)).Inc()
	}
}
