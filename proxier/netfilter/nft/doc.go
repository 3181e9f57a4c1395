// Package nft is kproxy's access to the nft tool, the kernel seam of
// nftables mode: knftables (sigs.k8s.io/knftables) interfaces whose every
// command has a deadline, and nftables mode's host prerequisites.
//
// Contract:
//   - Open returns a knftables.Interface (bound to a family and table, or
//     to none, for code that names its tables, as
//     netfilter.CleanupNFTablesMode does). It runs `nft --version` itself
//     through proxier/command first, so a missing nft is ErrNotInstalled
//     and a hung one is killed at the deadline; each later Run, Check and
//     List* runs under the caller's context bounded by the timeout and
//     fails with a *command.TimeoutError when that deadline ends it. The
//     probes knftables.New runs itself take no context: Open waits for
//     them at most the timeout but cannot kill them (after a working
//     `nft --version` they are not expected to hang).
//   - CheckPrerequisites says why a host cannot run nftables mode, as
//     upstream checks it: nft 1.0.1 or later, kernel 5.13 or later unless
//     KUBE_PROXY_NFTABLES_SKIP_KERNEL_VERSION_CHECK is set. It is a pure
//     function of a Host (tested with fake versions); ReadHost fills one
//     from this machine, and CheckHost does both (the call nftables mode
//     makes at start).
//
// Why this shape: knftables is the library upstream's nftables mode uses
// and whose Fake the tests use; what it lacks for kproxy's rules (bounded
// commands) is added around it here once, for the nftables backend and for
// the cleanup every mode runs, instead of in each. Unit tests put a fake
// nft script in PATH, so the real command path (errors, deadlines, the
// transaction text) is tested without root.
//
// The package has no package-level mutable state and never logs.
package nft
