// Package rules holds the iptables rules IPVS mode needs next to its
// virtual servers (upstream's writeIptablesRules): masquerading marks,
// NodePort and load-balancer handling through the ipsets, the source-range
// firewall, KUBE-IPVS-FILTER and KUBE-IPVS-OUT-FILTER.
//
// Render is a pure function of the state of the sets (which are empty, and
// the load-balancer VIPs the node may not reach) and Options, with
// upstream's text and order; Rules.Restore is its iptables-restore input
// (declarations of netfilter.IPVSChains, which flush them, the missing jump
// insertions, the rules, COMMIT), and Rules.Counts its rules per table.
//
// Applier writes Rules through the netfilter.Restorer seam of
// proxier/netfilter (real: xtables; fake: ruleset) in two steps a caller
// can tell apart: Read (iptables-save of nat and filter, to find the
// missing jumps) and Write (one iptables-restore through
// netfilter.TableRollback, the tables Read found serving as the rollback's
// snapshot) or WriteWithCanaries (the same, with the KUBE-PROXY-CANARY
// chains of mangle, nat and filter declared too: mangle's in a first block
// of its own, whose canary the rollback lists). The seam and
// its fake are proxier/netfilter's: this package adds none.
//
// Why a package of its own: the rules are the only part of IPVS mode that
// speaks iptables; they depend on the set names (ipvs/ipset) and on
// proxier/netfilter, and on nothing of IPVS, addresses or snapshots.
package rules
