package main

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/conntrack"
	"github.com/kproxy/kproxy/proxier/healthcheck"
	"github.com/kproxy/kproxy/proxier/metrics"
)

// healthObserver feeds /healthz and the sync metrics.
type healthObserver struct {
	health  *healthcheck.ProxyHealth
	metrics *metrics.Metrics
	// failedSyncIsRestore counts every failed sync as a failed
	// iptables-restore (iptables mode). IPVS mode's Proxier counts its own
	// failures by what failed, and only failed restores as such.
	failedSyncIsRestore bool
}

func (o healthObserver) Queued(family v1.IPFamily) {
	if o.health != nil {
		o.health.QueuedUpdate(family)
	}
	o.metrics.SyncProxyRulesLastQueuedTimestamp.WithLabelValues(string(family)).SetToCurrentTime()
}

func (o healthObserver) Synced(_ context.Context, snap *proxier.Snapshot, res proxier.SyncResult, elapsed time.Duration, err error) {
	fam := string(snap.Family)
	if err != nil {
		if o.failedSyncIsRestore {
			o.metrics.IPTablesRestoreFailuresTotal.WithLabelValues(fam).Inc()
			if !snap.Full {
				o.metrics.IPTablesPartialRestoreFailuresTotal.WithLabelValues(fam).Inc()
			}
		}
		return
	}
	if o.health != nil {
		o.health.Updated(snap.Family)
	}
	o.metrics.SyncProxyRulesLatency.WithLabelValues(fam).Observe(elapsed.Seconds())
	if res.Full {
		o.metrics.SyncFullProxyRulesLatency.WithLabelValues(fam).Observe(elapsed.Seconds())
	} else {
		o.metrics.SyncPartialProxyRulesLatency.WithLabelValues(fam).Observe(elapsed.Seconds())
	}
	o.metrics.SyncProxyRulesLastTimestamp.WithLabelValues(fam).SetToCurrentTime()
	for table, n := range res.Rules {
		o.metrics.IPTablesRulesTotal.WithLabelValues(fam, table).Set(float64(n))
	}
	for _, ts := range snap.TriggerTimes {
		o.metrics.NetworkProgrammingLatency.WithLabelValues(fam).Observe(time.Since(ts).Seconds())
	}
	internal, external := noLocalEndpoints(snap)
	o.metrics.NoLocalEndpointsTotal.WithLabelValues(fam, "internal").Set(float64(internal))
	o.metrics.NoLocalEndpointsTotal.WithLabelValues(fam, "external").Set(float64(external))
}

// noLocalEndpoints counts services whose Local policy finds no local endpoint while others exist.
func noLocalEndpoints(snap *proxier.Snapshot) (internal, external int) {
	for name, sp := range snap.All() {
		eps := snap.Endpoints(name)
		if eps == nil || !eps.HasAny || len(eps.Local) > 0 {
			continue
		}
		if sp.InternalPolicyLocal {
			internal++
		}
		if sp.ExternalPolicyLocal && sp.ExternallyAccessible() {
			external++
		}
	}
	return internal, external
}

// serviceHealthObserver keeps the health-check node port servers in step with the services.
type serviceHealthObserver struct {
	servers *healthcheck.ServiceHealth
	logger  klog.Logger
}

func (o serviceHealthObserver) Queued(v1.IPFamily) {}

func (o serviceHealthObserver) Synced(_ context.Context, snap *proxier.Snapshot, _ proxier.SyncResult, _ time.Duration, err error) {
	if err != nil {
		return
	}
	ports := map[types.NamespacedName]int32{}
	counts := map[types.NamespacedName]int{}
	for name, sp := range snap.All() {
		if sp.HealthCheckNodePort == 0 {
			continue
		}
		ports[name.NamespacedName] = sp.HealthCheckNodePort
		if eps := snap.Endpoints(name); eps != nil {
			counts[name.NamespacedName] = eps.LocalReadyCount()
		}
	}
	if err := o.servers.SyncServices(ports); err != nil {
		o.logger.Error(err, "Failed to start some health check node port servers")
	}
	o.servers.SyncEndpoints(counts)
}

// conntrackObserver deletes UDP flows that point at endpoints which are gone.
type conntrackObserver struct {
	cleaner *conntrack.Cleaner
	logger  klog.Logger
}

func (o conntrackObserver) Queued(v1.IPFamily) {}

func (o conntrackObserver) Synced(_ context.Context, snap *proxier.Snapshot, _ proxier.SyncResult, _ time.Duration, err error) {
	if err != nil || !needsConntrackCleanup(snap) {
		return
	}
	n, err := o.cleaner.Clean(snap)
	if err != nil {
		o.logger.Error(err, "Conntrack cleanup failed", "ipFamily", snap.Family)
		return
	}
	o.logger.V(4).Info("Deleted stale conntrack entries", "ipFamily", snap.Family, "entries", n)
}

// needsConntrackCleanup is true after a full sync or when a UDP service port changed.
func needsConntrackCleanup(snap *proxier.Snapshot) bool {
	if snap.Full || len(snap.StaleEndpoints) > 0 {
		return true
	}
	for name := range snap.Changed {
		if name.Protocol == v1.ProtocolUDP {
			return true
		}
	}
	return false
}
