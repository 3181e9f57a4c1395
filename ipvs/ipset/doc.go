// Package ipset is kproxy's seam to the kernel's IP sets and the sets
// upstream's IPVS mode uses: their names (KUBE-CLUSTER-IP, ... and the
// KUBE-6- names of IPv6), types and comments (Specs), the entry format
// ipset accepts and prints (CanonicalEntry), and a Syncer that brings
// kproxy's sets to wanted members.
//
// Seam: Interface (Restore a Batch in one `ipset -exist restore`; List
// every set). Exec is the real one: it runs the ipset binary with a
// deadline per run (ExecOptions.Timeouts) after which the command is
// killed. Fake is an in-memory Interface that rejects what ipset rejects
// (a conflicting create, a name over 31 characters, an entry of the wrong
// format or family, a command on a missing set, a swap of different types)
// and stores entries in ipset's canonical form;
// TestKernelIPSetAgreesWithTheFake holds it to the real ipset in the qemu
// guest. Unlike `ipset restore`, a failing batch changes nothing in the
// Fake; callers re-list after any failure, so both behave the same to them.
//
// Syncer: Sync creates every set of Specs (-exist) and writes the adds and
// dels that separate the sets from the wanted members, listing the kernel
// on a full sync or after a failure and diffing against its own last write
// otherwise; ApplyDelta writes given members only. Sets kproxy does not own
// are never touched and nothing is flushed. Members are named by
// upstream's IPv4 set name everywhere; the Syncer maps them to the family's.
//
// Why a package of its own: ipset is its own kernel interface and command,
// with its own grammar; which members a service port puts in which set is
// IPVS-mode policy and stays with the Proxier (ipvs.BuildDesiredSets), and
// the rules that match the sets are ipvs/rules'.
package ipset
