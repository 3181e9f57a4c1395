// Package probe sends test traffic from inside a network namespace without
// forking: a goroutine locks its OS thread, enters the namespace
// (github.com/vishvananda/netns, by /var/run/netns/<name>), creates the
// socket, and switches back. A socket belongs to the namespace it was
// created in, so the connect, reads and writes that follow run on any thread
// with ordinary deadlines. If the thread cannot switch back it is left
// locked, so the Go runtime discards it instead of reusing a thread stuck in
// a foreign namespace.
//
// Probes talk to test/podserver: the first line of an answer is
// "<pod> <source ip:port as the pod saw it>", which tells a test which
// endpoint was chosen and whether the packet was masqueraded.
//
// Failures are classified so tests can tell rule outcomes apart:
//   - ErrRefused: the connection was actively refused: a TCP RST, or an
//     ICMP port-unreachable (the default of iptables REJECT, which is what
//     kube-proxy's REJECT rules send). Both map to ECONNREFUSED in the kernel
//     and cannot be told apart from a socket.
//   - ErrUnreachable: an ICMP host/network unreachable or prohibited answer
//     (EHOSTUNREACH, ENETUNREACH, EACCES).
//   - ErrTimeout: nothing came back before the deadline: what DROP gives.
//   - ErrLocalDrop: EPERM, a rule in the sending namespace's own OUTPUT
//     chain dropped the packet before it left.
//   - ErrReset: an established connection was reset (long-lived probes).
//   - ErrUnsupported: the kernel cannot create the socket (e.g. no SCTP).
//
// Sockets are created with IP_RECVERR/IPV6_RECVERR while connecting (and
// for UDP throughout): an ICMP error that arrives while connect(2) still
// holds the socket, which happens with veth round trips, would otherwise only
// surface at the next SYN retransmission a second later, and UDP would
// ignore host-unreachable altogether.
//
// Every error is also wrapped with the namespace, protocol and address, and
// the underlying errno stays reachable with errors.Is.
package probe
