// Package proxier turns Kubernetes objects into a backend-neutral model and
// drives backends with it.
//
// Flow: informers call a Tracker (one per IP family) with Services,
// EndpointSlices and the local Node; the Tracker implements the three
// per-kind handler interfaces of package informers, and each source
// delivers every event to every family's tracker (there is no fan-out type
// here: the trackers are registered with the source, as upstream registers
// its proxiers). The tracker only marks Services dirty;
// Snapshot converts the dirty ones into ServicePorts and categorized
// EndpointSets (traffic policies, topology hints, terminating fallback, as
// upstream kube-proxy does) and reports which service ports changed. A Runner
// schedules syncs with bounded frequency and hands snapshots to a Backend
// (iptables or IPVS); a failed sync requeues its changes and forces the next
// sync to be full, so the kernel always converges and never loses working
// rules to bad input. The Runner is the only owner of "the next sync must be
// full" (first sync, after a failure, ForceFull, FullSyncInterval); its
// snapshot source is an interface (backend tests drive a real Runner from
// a proxiertest.World's Tracker). Objects reach the trackers through apivalidation's
// per-kind handlers (NewHandlers), which drop what kube-apiserver would
// refuse (one log line per object, whatever the number of families; an
// invalid update keeps the last valid version). The conversion
// still skips, with a log line, the parts the API server accepts but kproxy
// cannot use (an EndpointSlice port without a valid number, an address of
// the other family) and refuses numbers that would make an invalid rule, so
// a tracker fed directly cannot break a renderer either. Every address is
// parsed with apivalidation.ParseAddr/ParsePrefix (legacy syntax, never a
// zone). An unparseable loadBalancerSourceRanges entry fails closed
// (ServicePort.FirewallRequired).
//
// A Snapshot's service ports and endpoint sets are a read-only view of the
// Tracker's model (Service, Endpoints, Len, All, SortedNames), which the
// next Tracker.Snapshot updates in place rather than copying 10k entries
// per sync: only a Tracker makes a Snapshot with service ports, a backend
// cannot write the view, and a snapshot is valid until the next
// Tracker.Snapshot. Its accessors then panic (a generation compare, no
// allocation): reading it would show the newer model under the older
// Changed set. Changed, Full, StaleEndpoints and TriggerTimes are the
// snapshot's own. Backend tests get snapshots the same way, from a
// proxiertest.World.
//
// Backends never see API objects, which keeps them pure functions of a
// Snapshot plus their kernel seam, and keeps the Kubernetes semantics in one place.
package proxier
