// Package e2e holds kproxy's kernel tests for iptables mode: each test builds
// a world of network namespaces (test/netns), runs the real kproxy binary in
// the node namespace with manifests written by the test, and sends real
// TCP/UDP/SCTP traffic (test/probe) to check where it lands and what source
// the backend sees. Nothing touches the machine's own network namespace.
//
// Fault tests (fault_*_test.go, cluster_flap_test.go) break something under
// traffic — rules removed behind kproxy's back, the xtables lock held (a
// test-private lock file through XTABLES_LOCKFILE, never the host's), a full
// conntrack table (inside the qemu guest only), kube-apiserver flapping —
// and log "fault X: N new connections tried, M failed; long-lived ..." with
// the time to recovery.
package e2e
