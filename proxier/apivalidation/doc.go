// Package apivalidation checks Services, EndpointSlices and the Node as
// kube-apiserver validates them, for the fields kproxy reads, and parses
// addresses the way upstream kube-proxy does. It is kproxy's one validation
// path: its handlers (NewHandlers: one decorator per kind, ServiceHandler,
// EndpointSliceHandler, NodeHandler) sit in front of the trackers for both
// sources (API server informers and --manifests files), so an object the
// API server would refuse never reaches a tracker or a renderer, whichever
// way it came in.
//
// Contract:
//   - ValidateService and ValidateEndpointSlice return a field.ErrorList (empty
//     when valid) with the API server's paths and messages. They check what
//     kube-apiserver v1.37 checks on create and update for the fields kproxy
//     reads, after the API server's defaulting (an unset protocol is TCP, an
//     unset session affinity None, and so on; a hand-written manifest gets the
//     same defaults from the manifest source). Deliberate differences, all
//     towards accepting what an API server may serve:
//     a Service name is a DNS-1123 label (v1.37's RelaxedServiceNameValidation,
//     GA; older servers used the stricter DNS-1035 label);
//     IPs may be in the legacy forms old API servers stored (IPv4 with leading
//     zeros, read as decimal like net.ParseIP once did, and IPv4-mapped IPv6),
//     which the strict validation only refuses for new values;
//     loadBalancerSourceRanges are not checked: the API server keeps serving
//     old unparseable values, so kproxy handles them per entry and fails
//     closed (see proxier.ServicePort.FirewallRequired);
//     an LB Service with externalTrafficPolicy Local and no
//     healthCheckNodePort is accepted (the API server's allocator would have
//     set one; kproxy then serves no health check);
//     EndpointSlice port numbers are not checked (the API server does not)
//     and are skipped per port by the tracker.
//   - ParseAddr and ParsePrefix are the only address parsers of the
//     proxier: net.ParseIP's legacy syntax (k8s.io/utils/net ParseIPSloppy),
//     never an IPv6 zone ("fe80::1%eth0" would fail the whole
//     iptables-restore), IPv4-mapped addresses returned as IPv4.
//   - The handlers deliver an object downstream only when it is valid; an
//     invalid add is dropped, an invalid update keeps the last valid version
//     downstream, an invalid-to-valid update is delivered (as an add when
//     nothing was delivered before), and a delete always goes through with
//     the version downstream has. Each rejection is one log line naming the
//     object (klog.KObj) with the field errors. Each decorator validates an
//     event once and passes it to every downstream handler of its kind (one
//     tracker per IP family). The Node is always passed on; its unusable
//     addresses are logged once per change.
//   - Validation allocates only for invalid objects; it runs once per event
//     whatever the number of IP families.
package apivalidation
