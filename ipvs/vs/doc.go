// Package vs is kproxy's seam to the kernel's IPVS table — virtual
// servers and their destinations — and the logic that only concerns that
// table: converging it to a desired set and draining removed destinations.
//
// Seam: Handle (list, get, create, update and delete virtual servers and
// destinations; read and set the connection timeouts). KernelHandle is the
// real one over github.com/moby/ipvs (one generic netlink socket per
// handle; NewIsolatedKernelHandle opens one in a private network namespace
// for probes). KernelHasIPVS says whether the kernel has IPVS at all,
// which NewKernelHandle cannot (moby/ipvs hands out a handle either way),
// for code that only cleans up. Fake is an in-memory Handle that rejects what the kernel
// rejects, with the kernel's errnos (ESRCH for a missing virtual server,
// ENOENT for a missing destination or scheduler, EEXIST for a duplicate,
// EINVAL for a bad value); TestKernelRejectsWhatTheFakeRejects and
// TestKernelTimeoutsMatchTheFake hold it to the kernel in the qemu guest.
//
// Reconciler: Full lists the table once, converges every desired virtual
// server and deletes the undesired ones its caller owns; Partial reads and
// writes only the virtual servers it is given. Removed destinations drain:
// UDP and SCTP ones and idle ones go at once, others stay at weight 0
// until ProcessTerminating finds them idle or past their deadline; a
// destination that is wanted again is restored to weight 1 in place, which
// also repairs one a previous process left at weight 0. Its methods are
// serialized by one mutex, because the Handle is one netlink socket.
//
// Why a package of its own: the table's types (ServiceKey, VirtualServer,
// Destination), the Handle and the Reconciler need nothing of snapshots,
// addresses, ipsets or iptables, and everything else IPVS mode does needs
// them; keeping them here lets startup probe schedulers and the Proxier
// reconcile without either knowing the other.
package vs
