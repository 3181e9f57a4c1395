// Package addresses is kproxy's seam to the node's addresses for one IP
// family: the kube-ipvs0 dummy device that holds the service addresses
// IPVS mode accepts traffic for, and the addresses of every other
// interface (the node's own, for NodePorts).
//
// Seam: Manager (EnsureDevice, Bound, Bind, Unbind, Local). Netlink is the
// real one over route netlink, in the caller's or a named network
// namespace, with every send and receive bounded by NetlinkTimeout and
// interrupted dumps retried. Fake is an in-memory Manager that, like the
// kernel, refuses to bind before the device exists and accepts binding a
// bound address or unbinding a missing one; TestKernelAddressesMatchTheFake
// plays the same script on both in the qemu guest. Both can also remove
// the device (RemoveDevice, for cleanup).
//
// Why a package of its own: addresses are a kernel interface of their own
// (route netlink, not IPVS's generic netlink), used by the Proxier's sync
// and by cleanup, and nothing in them depends on IPVS. Which addresses get
// NodePorts (ipvs.NodePortIPs) is policy and stays with the Proxier.
package addresses
