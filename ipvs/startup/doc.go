// Package startup is IPVS mode's host setup at start (upstream's
// NewProxier and CanUseIPVSProxier): the scheduler probe, the sysctls IPVS
// mode needs (vs/conntrack, expire_nodest_conn, expire_quiescent_template,
// conn_reuse_mode on kernels that need it, ip_forward), strictARP (raising
// arp_ignore and arp_announce, never lowering a stricter value) and the
// IPVS connection timeouts.
//
// Apply checks the scheduler first, by creating and deleting a probe
// virtual server (best through vs.NewIsolatedKernelHandle, in a throwaway
// namespace, so nothing is left even after a crash), so a kernel without it
// fails before anything is changed; it then writes the sysctls and the
// timeouts and reports what it changed for the caller to log.
//
// Seams: vs.Handle (probe and timeouts; fake: vs.Fake) and
// proxier/sysctl's Interface (fake: a sysctl.Dir over a temporary tree).
// TestKernelStartupSettingsInNamespace and TestKernelProbeScheduler run it
// against the kernel in the qemu guest.
//
// Why a package of its own: it runs once, before any sync, and touches
// the host (sysctls) rather than the IPVS table; keeping it apart keeps the
// Proxier's sync free of start-up concerns.
package startup
