// Package e2e holds kproxy's kernel tests for iptables mode: each test builds
// a world of network namespaces (test/netns), runs the real kproxy binary in
// the node namespace with manifests written by the test, and sends real
// TCP/UDP/SCTP traffic (test/probe) to check where it lands and what source
// the backend sees. Nothing touches the machine's own network namespace.
package e2e
