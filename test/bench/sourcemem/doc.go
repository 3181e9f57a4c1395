// Package sourcemem measures the memory kproxy's object pipeline holds at
// scale, in process: Services and EndpointSlices shaped as a real cluster
// serves them (managedFields, owner references, last-applied annotations,
// Pod references, zones) go through the path cluster mode takes
// (client-go shared informers and RunCluster over a fake clientset, the
// validation handlers, a Tracker) up to the first Snapshot, the model a
// first full sync renders from. No backend runs: the figures are the
// source's and the model's share of the proxy's memory, comparable across
// changes to informers/, proxier/apivalidation and proxier.
//
// The fake clientset hands out copies without encoding them, so decoding
// from the wire (protobuf in kproxy's default configuration) is not part
// of the figures; make bench-nft measures the whole process against a real
// kube-apiserver. Peak and live figures are heap bytes above what the fake
// clientset's own store holds. Each measurement should run in a fresh
// process (cmd/kpx-source-mem does) so that one run's heap does not
// inflate the next.
package sourcemem
