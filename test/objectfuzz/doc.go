// Package objectfuzz is the shared half of the object fuzzers: the fuzz
// arguments that describe one Service and one EndpointSlice (Case), their
// seeds, the way they reach the trackers (through validation or not), and
// the reader of the checked-in corpus. Each backend keeps its own
// invariants in its own package: iptables' FuzzObjectToRules (rendering,
// iptables-restore, comments) and ipvs' FuzzObjectToIPVS (desired state,
// ipset members), so neither backend's tests import the other.
//
// The corpus lives where Go's fuzzing engine keeps FuzzObjectToRules'
// (CorpusDir, under iptables/); FuzzObjectToIPVS adds every entry of it to
// its seeds, so both backends check the same inputs, and
// iptables' TestFuzzCorpusInKernel applies them with the real
// iptables-restore.
//
// Only tests import this package.
package objectfuzz
