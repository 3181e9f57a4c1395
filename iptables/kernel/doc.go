// Package kernel is the real iptables.Restorer: it runs iptables-restore
// --noflush (or ip6tables-restore) with the rules on stdin and
// iptables-save -t TABLE, with kube-proxy's xtables lock wait flags
// (-w 5 -W 100000).
//
// Contract: Restore hands the input to the binary unchanged and returns a
// *RestoreError when it fails, with stderr and the input lines around the
// line iptables-restore blamed, so the caller can log one useful message.
// Note that iptables-nft 1.8.9 commits each "*table ... COMMIT" block on its
// own: when the nat block fails, an earlier filter block of the same input
// stays applied (ruleset.FakeOptions.CommitPerTable models this). Callers
// must treat a failed restore as "state unknown" and resync fully. Some
// errors (a jump to a missing chain) are blamed on the block's COMMIT line,
// so RestoreError.Context, not Line alone, shows the offending rule.
//
// The package imports neither the iptables package nor anything of the
// proxier, so that both may depend on it. Commands can be prefixed (e.g.
// with "ip netns exec NS") so tests run inside a network namespace they own.
package kernel
