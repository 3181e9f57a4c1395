// Package informers is where kproxy's view of the world comes from. It feeds
// Handlers (handler.go, the fixed contract) with Services, EndpointSlices
// and this node's Node from one of two sources, which behave the same way so
// that everything downstream is exercised identically.
//
// The handler interfaces are split per kind, as upstream's pkg/proxy/config
// splits them: ServiceHandler, EndpointSliceHandler, NodeHandler. A source
// takes Handlers, a list of handlers per kind, and delivers every event to
// each handler of its kind in order (upstream's RegisterEventHandler), so a
// decorator (validation) or a consumer (a tracker per IP family, /healthz's
// Node watcher) implements only the kinds it handles and nothing fans out
// by hand. A kind's calls can also be held as Events (functions): fan-out
// (ServiceEvents, EndpointSliceEvents, NodeEvents), the cluster source's
// serialization and re-applied selection, and decorators such as
// validation are written once over Events for the three kinds, and
// ServiceFuncs, EndpointSliceFuncs and NodeFuncs turn Events back into a
// kind's handler (as client-go's ResourceEventHandlerFuncs do).
//
// The two sources:
//
//   - RunCluster watches an API server with client-go shared informers, as
//     kube-proxy does: Services and EndpointSlices with ProxyLabelSelector
//     (objects of another service proxy, and headless slices, are never
//     seen) and a Node informer restricted to metadata.name=<node>. The
//     selection is re-applied client-side, so an object whose labels move it
//     out of the selection is delivered as a delete (and into it as an add),
//     whatever the server did. Tombstones (cache.DeletedFinalStateUnknown)
//     are unwrapped; objects of unexpected types are logged and dropped.
//     Before an object enters an informer's cache, what nothing in kproxy
//     reads is dropped (slimObject: managedFields, owner references, the
//     selector, Pod references, other labels and annotations): the cache
//     holds the whole cluster's Services and EndpointSlices for the life
//     of the process. Handlers therefore see only the fields kproxy uses.
//     NewClient builds the clientset from --kubeconfig/--master or the
//     in-cluster environment. RunServiceCIDRs watches ServiceCIDR objects
//     beside it for nftables mode (their ranges, not a handler kind:
//     nothing waits for their listing, so an API server without them does
//     not hold up the proxy).
//   - RunManifests reads the same kinds from YAML/JSON files (the offline
//     --manifests mode used by the demo, dry runs and most tests), applies
//     the same selection, and polls for changes, delivering Add/Update/
//     Delete for what differs from the last delivered state. LoadManifests
//     is the one-shot reader; Objects.Select and Objects.Replay turn its
//     result into the calls an informer's initial list would make. The
//     files' ServiceCIDR objects are RunServiceCIDRs's counterpart: their
//     ranges go to OnServiceCIDRs, before the first Synced calls.
//
// Contract common to both sources:
//   - Handlers must hold at least one handler of each kind (checked when
//     the source starts); each event goes to every handler of its kind, in
//     the order given.
//   - No two handler calls run concurrently, whatever their kinds.
//   - OnServicesSynced, OnEndpointSlicesSynced and OnNodeSynced are called
//     exactly once on each handler, after every initially present object
//     was delivered.
//   - When the source function returns, no handler call is in flight or
//     will follow.
//
// Manifest specifics, and why:
//   - Documents are separated by "---" lines; kind List (items carry their
//     kind) and typed lists such as ServiceList (items may omit it) are
//     expanded. Other kinds are skipped and logged at V(2).
//   - Nothing has validated a file, as an API server validates what it
//     stores. Services and EndpointSlices go through the validation every
//     source's objects go through (proxier/apivalidation); a ServiceCIDR
//     is checked here (ValidateServiceCIDR) and one the API server would
//     refuse is logged with its name and left out, not an error of the read.
//   - Decoding is lenient about unknown fields, like the API server, but a
//     value of the wrong type is an error; errors name the file, the 1-based
//     document number (and line, and list item). Duplicate objects are
//     errors, since which copy wins would otherwise be arbitrary.
//   - The API-server defaults the proxy relies on are applied (namespace
//     "default", Service type/protocol/targetPort/sessionAffinity/traffic
//     policies/clusterIPs/ipFamilies, EndpointSlice port name and protocol),
//     so hand-written files behave like objects read from a cluster.
//   - Changes are detected by comparing the serialized objects (ignoring
//     resourceVersion); a new or changed object gets a resourceVersion equal
//     to the read generation, as an API server would bump it.
//   - The first read must succeed. A later read that fails (unreadable
//     path, parse error) is reported through OnError or the Logger and the
//     previous state is kept: a broken edit never removes working services.
//     A change is applied once two consecutive polls see the same content,
//     so a half-written file is not acted upon.
package informers
