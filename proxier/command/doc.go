// Package command runs the external programs kproxy depends on (iptables-restore,
// iptables-save, iptables, ipset, ...) so that none of them can hang kproxy.
//
// Contract: Run starts the program in its own process group with a deadline.
// When the deadline passes or the caller's context ends, the whole group is
// killed with SIGKILL (a shell wrapper and its children alike), and Run
// returns at most WaitDelay later even if an escaped descendant keeps the
// output pipes open. A timeout is reported as a *TimeoutError, which
// errors.Is matches against context.DeadlineExceeded, so callers treat it as
// an ordinary failed command (a failed sync, retried by the runner), never
// as a hang.
//
// Timeouts chooses the deadline: a base for every command plus an allowance
// per MiB of input, because a full iptables-restore legitimately grows with
// the cluster (measured on a quiet 2-core machine with iptables 1.8.9: 31 MB
// for 10k services restores in ~13 s, 30k services in ~45 s, i.e. ~0.45 s
// per MB, and about ten times slower in an emulated guest). The defaults
// (DefaultBase 60 s, DefaultPerMB 5 s) leave about ten times that margin: a
// false timeout would fail every full sync and freeze the rules, which is
// worse than waiting a few minutes for a truly hung command.
//
// The child inherits kproxy's environment unchanged, so XTABLES_LOCKFILE
// (the xtables lock iptables-legacy takes, /run/xtables.lock by default)
// and PATH reach iptables as they reach kproxy.
package command
