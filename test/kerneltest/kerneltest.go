// Package kerneltest is the one place where kproxy's tests decide not to
// run. Every tier (iptables differential, conntrack, IPVS, netns worlds, the
// qemu guest, e2e, the cluster) skips only through it, so one policy holds:
//
//   - SkipOrFail (and NeedRoot, NeedTools): something the test needs is
//     missing here — root, a tool, a kernel feature. The test skips with the
//     reason, or fails under KPROXY_KERNEL_TESTS=require (set by
//     scripts/test.sh, the README's test command), so CI never passes with a
//     tier silently skipped.
//   - RunsElsewhere (and GuestOnly, HostOnly): the test is meant to run in
//     another place — inside the qemu guest, started by a named test/vm test;
//     in the other proxy mode. It skips even under require and must say where
//     it runs and what starts it; that place runs it under require.
//   - OptIn: runs that are not part of the suite (a benchmark smoke test, a
//     latency comparison with upstream kube-proxy) skip unless their
//     environment variable is set, and say so.
//
// A unit test of this package scans the repository and fails on any
// t.Skip/Skipf/SkipNow call, or read of KPROXY_KERNEL_TESTS, outside it.
//
// It also holds the few helpers every kernel tier shares, so that they are
// written once: Netns (a bare network namespace) and IPTablesSave.
package kerneltest

import (
	"os"
	"os/exec"
	"testing"
)

// Env is the variable that turns missing-prerequisite skips into failures
// when set to "require".
const Env = "KPROXY_KERNEL_TESTS"

// EnvInGuest is set to "1" by the qemu guest's init for the binary it runs (test/vm).
const EnvInGuest = "KPROXY_IN_VM"

// Required reports whether KPROXY_KERNEL_TESTS=require: no test may skip
// for lack of root, a tool or a kernel feature.
func Required() bool { return os.Getenv(Env) == "require" }

// InGuest reports whether the test runs inside the qemu guest.
func InGuest() bool { return os.Getenv(EnvInGuest) == "1" }

// SkipOrFail stops t because something it needs is missing here (reason
// says what): a skip, or a failure under KPROXY_KERNEL_TESTS=require.
func SkipOrFail(t testing.TB, reason string) {
	t.Helper()
	if Required() {
		t.Fatalf("%s (%s=require: a missing prerequisite is a failure)", reason, Env)
	}
	t.Skip(reason)
}

// NeedRoot is SkipOrFail unless the test runs as root; what names the tier.
func NeedRoot(t testing.TB, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, what+": needs root (run the README's test command as root)")
	}
}

// NeedTools is SkipOrFail for the first of tools not found in PATH.
func NeedTools(t testing.TB, what string, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			SkipOrFail(t, what+": "+tool+" not found in PATH")
		}
	}
}

// RunsElsewhere skips t, also under KPROXY_KERNEL_TESTS=require, because it
// is meant to run in another place; where says which and what starts it,
// e.g. "inside the qemu guest, started by test/vm TestIPVSKernel".
func RunsElsewhere(t testing.TB, where string) {
	t.Helper()
	if where == "" {
		t.Fatal("kerneltest.RunsElsewhere: say where the test runs and what starts it")
	}
	t.Skip("runs elsewhere: " + where)
}

// GuestOnly lets t run only inside the qemu guest; startedBy names the
// host-side test that boots the guest and runs it there.
func GuestOnly(t testing.TB, startedBy string) {
	t.Helper()
	if !InGuest() {
		RunsElsewhere(t, "inside the qemu guest, started by "+startedBy)
	}
}

// HostOnly keeps t (a test that boots the qemu guest) from running inside
// the guest, where the test binary of its own package may be started.
func HostOnly(t testing.TB) {
	t.Helper()
	if InGuest() {
		RunsElsewhere(t, "on the host (it boots the qemu guest); this is the guest")
	}
}

// OptIn skips t unless envVar is set to a non-empty value; what says what
// the run is, e.g. "benchmark plumbing smoke test (30 s in the guest)".
func OptIn(t testing.TB, envVar, what string) {
	t.Helper()
	if os.Getenv(envVar) == "" {
		t.Skip("opt-in, not part of the suite: " + what + "; set " + envVar + "=1 to run it")
	}
}
