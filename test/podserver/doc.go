// Command podserver is the backend that kernel tests and the demo run inside
// each pod namespace. It answers every client with its name and the source
// address it saw, so a test learns both which endpoint a service chose and
// whether the packet was masqueraded:
//
//	podserver -name pod-1 -tcp 8080,80 -udp 5353 -sctp 9000
//
// Each port listens on 0.0.0.0 and [::] (IPv6-only sockets, so IPv4 clients
// are never reported as ::ffff:a.b.c.d).
//
//   - TCP and SCTP (one-to-one style, SOCK_STREAM/IPPROTO_SCTP): on accept it
//     writes "<name> <remote ip:port>\n", then keeps the connection open and
//     answers each line L with "<name> L\n", so long-lived connections can
//     be checked after rule changes.
//   - UDP: each datagram gets one reply "<name> <remote ip:port>\n".
//
// It prints "podserver <name> ready" on stdout once every socket is bound
// (the harness waits for it) and exits non-zero with a clear message when a
// socket cannot be opened, e.g. when the kernel lacks SCTP.
package main
