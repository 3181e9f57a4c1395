package nftables

import (
	"github.com/kproxy/kproxy/proxier"
)

// The only place that reads a Snapshot's services and endpoints.

// forEachService calls fn for every service port of snap.
func forEachService(snap *proxier.Snapshot, fn func(proxier.ServicePortName, *proxier.ServicePort, *proxier.EndpointSet)) {
	for name, sp := range snap.Services {
		fn(name, sp, snap.Endpoints[name])
	}
}

// lookupService returns a service port of snap and its endpoints (nil, nil when gone).
func lookupService(snap *proxier.Snapshot, name proxier.ServicePortName) (*proxier.ServicePort, *proxier.EndpointSet) {
	sp := snap.Services[name]
	if sp == nil {
		return nil, nil
	}
	return sp, snap.Endpoints[name]
}

// serviceCount is the number of service ports of snap.
func serviceCount(snap *proxier.Snapshot) int { return len(snap.Services) }
