// Package netns builds throwaway "worlds" of Linux network namespaces for
// kernel tests and the demo: a node with pods on a bridge, a second node with
// remote pods, and an external client, all wired with veth pairs and static
// routes so that real traffic can be sent through kproxy's rules.
//
// Layout (one World; every name carries a random per-world prefix such as
// "kpx-1a2b3c-"):
//
//	client (192.168.50.2 + .3, fd00:50::2 + ::3)
//	   │ eth0 ─ eth0
//	node (192.168.50.1, fd00:50::1; cbr0 10.244.1.1/24, fd00:10:244:1::1/64)
//	   ├── cbr0 ── veth-pod-N ─ eth0 of pod-N (10.244.1.1N, fd00:10:244:1::1N)
//	   │ eth1 (10.100.0.1, fd00:100::1) ─ eth0 (10.100.0.2, fd00:100::2)
//	node2 (cbr0 10.244.2.1/24, fd00:10:244:2::1/64)
//	   └── cbr0 ── veth-pod-N ─ eth0 of node2-pod-N (10.244.2.1N, ...)
//
// The node and node2 forward IPv4 and IPv6; the client does not (it stands for
// "the outside", and the node's default route points at it, so stray traffic
// dies there instead of looping). Bridge ports run in hairpin mode so that a
// pod can reach itself through a service (br_netfilter "bridged DNAT" sends
// such packets back out of the port they came in on).
//
// br_netfilter: on the reference host it is built into the kernel and
// net.bridge.bridge-nf-call-iptables defaults to 1 in every new namespace,
// so traffic crossing cbr0 traverses the node's iptables (World.BridgeNetfilter
// reports it). The world does not change it. Consequences measured here:
// with it on, pod→service→other pod on the same bridge works without
// masquerade, and pod→service→same pod needs both masquerade and hairpin
// mode; with it off, the former breaks and hairpin mode stops mattering.
//
// Safety contract: nothing is created in the caller's network namespace.
// Every link is created inside a world namespace (the veth peer is placed
// directly into the other world namespace), every process is started inside
// a world namespace in its own process group, and Close kills those processes
// (and anything else still living in the world's namespaces) and deletes the
// namespaces. Close is idempotent and safe after a partial setup failure;
// NewWorld calls it itself when setup fails.
//
// The core API takes an Options struct and returns errors so that the demo
// command can use it; NewForTest is the thin testing wrapper (skips when not
// root, closes on cleanup).
//
// Tooling: iproute2's ip (netns, link, addr, route) and sysctl, run through
// "ip netns exec", so the namespaces are the same ones any shell user sees in
// "ip netns list" while debugging.
package netns
