// Package xtables is the real netfilter.Restorer and ChainLister of both
// proxy modes and --cleanup: it runs iptables-restore --noflush (or
// ip6tables-restore) with the rules on stdin, iptables-save -t TABLE and
// iptables -t TABLE -S CHAIN, with kube-proxy's xtables lock wait flags
// (-w 5 -W 100000). (xtables is what iptables-nft and iptables-legacy have
// in common: the same commands, input and output.)
//
// Contract: Restore hands the input to the binary unchanged and returns a
// *RestoreError when it fails, with stderr and the input lines around the
// line iptables-restore blamed, so the caller can log one useful message.
// Note that iptables-restore (nft and legacy alike) commits each
// "*table ... COMMIT" block on its own: when the nat block fails, an
// earlier filter block of the same input stays applied (ruleset.Fake models
// this, and netfilter.TableRollback undoes it). Some errors (a jump to a
// missing chain) are blamed on the block's COMMIT line, so
// RestoreError.Context, not Line alone, shows the offending rule.
//
// Every command has a deadline (proxier/command): Options.Timeout, plus
// Options.TimeoutPerMB per MiB of a restore's input. One that overruns is
// killed with its whole process group and fails with a
// *command.TimeoutError, an ordinary failure for the caller.
//
// Backend picks the binaries: iptables-nft-*, iptables-legacy-* or, when
// empty, the ones installed as plain iptables-*. DetectBackend chooses
// between nft and legacy with upstream's iptables-wrappers rule (kubelet's
// hint chains first, then whichever holds more rules; see detect.go).
// Commands inherit the process environment: iptables-legacy takes the
// xtables lock at $XTABLES_LOCKFILE (default /run/xtables.lock, shared with
// the host and with kubelet), and tests point it at a private file.
//
// The package imports neither the netfilter core, nor a backend, nor the
// proxier's model, so that all of them may depend on it. Commands can be
// prefixed (e.g. with "ip netns exec NS") so tests run inside a network
// namespace they own.
package xtables
