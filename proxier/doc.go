// Package proxier turns Kubernetes objects into a backend-neutral model and
// drives backends with it.
//
// Flow: informers call a Tracker (one per IP family) with Services,
// EndpointSlices and the local Node. The tracker only marks Services dirty;
// Snapshot converts the dirty ones into ServicePorts and categorized
// EndpointSets (traffic policies, topology hints, terminating fallback, as
// upstream kube-proxy does) and reports which service ports changed. A Runner
// schedules syncs with bounded frequency and hands snapshots to a Backend
// (iptables or IPVS); a failed sync requeues its changes and forces the next
// sync to be full, so the kernel always converges and never loses working
// rules to bad input: invalid objects or parts of objects are logged with the
// object's name and skipped during conversion.
//
// Backends never see API objects, which keeps them pure functions of a
// Snapshot plus their kernel seam, and keeps the Kubernetes semantics in one place.
package proxier
