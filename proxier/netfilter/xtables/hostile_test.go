package xtables_test

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/test/kerneltest"
)

// requireKernel checks the prerequisites before a test builds its input:
// a skip, or a failure under KPROXY_KERNEL_TESTS=require (test/kerneltest).
func requireKernel(t *testing.T) {
	t.Helper()
	kerneltest.NeedRoot(t, "iptables kernel test (creates a network namespace)")
	kerneltest.NeedTools(t, "iptables kernel test", "ip", "iptables-restore", "ip6tables-restore", "iptables-save")
}

// TestKernelTokenizerDifferential feeds lines whose splitting is easy to
// get wrong to iptables-restore and to the Fake: both must accept or refuse
// them alike and list the same rules afterwards.
func TestKernelTokenizerDifferential(t *testing.T) {
	requireKernel(t)
	rule := func(name, comment string, wantErr bool) step {
		return step{name: name, wantErr: wantErr, input: block("filter", ":KPX-T - [0:0]",
			"-A KPX-T -m comment --comment "+comment+" -j ACCEPT")}
	}
	runDifferential(t, v1.IPv4Protocol, []step{
		rule("escapes inside quotes", `"q\"b\\s\'x\y"`, false),
		rule("backslash outside quotes is literal", `a\b`, false),
		rule("quote in the middle of an argument", `ab"cd ef"`, false),
		rule("closing quote ends the argument", `"a"b`, true),
		rule("CR is not a blank", "a\rb", false),
		rule("tab inside quotes", "\"a\tb\"", false),
		rule("NUL ends the line", "\"ab\x00cd\"", false),
		rule("invalid UTF-8", "\"\xff\xfeab\"", false),
		rule("comment over 255 bytes is cut", `"`+strings.Repeat("x", 300)+`"`, false),
		rule("empty comment", `""`, false),
		rule("parameter of 1024 bytes", strings.Repeat("y", 1024), true),
		{name: "COMMIT with a trailing blank", wantErr: true, input: "*filter\n:KPX-U - [0:0]\nCOMMIT \n"},
		{name: "flush", input: block("filter", "-F", "-X")},
	})
}
