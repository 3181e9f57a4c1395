// Package iptables is kproxy's iptables backend: it renders a proxier.Snapshot
// as iptables-restore input identical to upstream kube-proxy's (chain names,
// comments, rule text, probabilities, rule order within chains) and applies
// it through the Restorer seam.
//
// Contract:
//   - Rendering (Renderer, Render) is a pure function of a snapshot and
//     RenderOptions. Top-level chains are always rewritten completely;
//     per-service chains (KUBE-SVC/SVL/EXT/FW/SEP) only for changed services
//     unless the snapshot is full. Output is deterministic: services are
//     visited by svcPortName and chains are laid out KUBE-NODEPORTS,
//     KUBE-SERVICES, then by name, which is how upstream's golden tests
//     normalize its (map-ordered) output, so goldens compare byte for byte.
//   - Proxier (a proxier.Backend) runs each sync as plan → render → apply →
//     account with exactly one Restore call. The first sync, any sync after a
//     failure, and a change of large-cluster mode are full; a full sync reads
//     nat and filter to delete leftover per-service chains and to insert only
//     the jump rules that are missing (so they are never duplicated), and
//     redeclares the KUBE-PROXY-CANARY chains. Partial syncs delete the chains
//     of removed services from what the proxier wrote last time. Only our
//     chains are ever declared, so --noflush leaves other software alone.
//   - Cleanup removes what kproxy or upstream kube-proxy installed, except
//     kubelet's shared KUBE-MARK-MASQ and KUBE-FIREWALL.
//
// Why this shape: upstream's single 900-line sync function mixes planning,
// rendering and kernel access; here each step is small and the renderer can
// be tested (golden text, packet tracing through iptables/ruleset) without
// root. Subpackages: ruleset (in-memory Fake, parser, tracer) and kernel
// (the exec-based Restorer).
package iptables
