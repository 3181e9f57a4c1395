package xtables_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kproxy/kproxy/iptables"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
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

// hostileName is one name no validated object has.
type hostileName struct{ what, name string }

var hostileNames = []hostileName{
	{"quote", `q"uote`}, {"backslash", `back\slash`}, {"blank", "a b"}, {"newline", "new\nline"},
	{"CR", "car\rriage"}, {"tab", "t\tab"}, {"NUL", "nul\x00byte"}, {"jump", "-j ACCEPT"},
	{"closing quote and jump", `x" -j ACCEPT -m comment --comment "y`}, {"new rule", "\n-A INPUT -j ACCEPT"},
	{"escaped quote", `\"`}, {"lone quote", `"`}, {"lone backslash", `\`}, {"300 bytes", strings.Repeat("n", 300)},
	{"300 bytes of 2-byte runes", strings.Repeat("é", 150)}, {"non-UTF-8", "bad\xff\xfeutf8"},
	{"terminal escape", "esc\x1b[31m"}, {"DEL", "del\x7f"}, {"empty", ""},
}

// TestKernelHostileServiceNames syncs service ports whose namespace, name
// and port name are hostile, built directly (as if validation were
// bypassed), through the iptables proxier into a namespace: the real
// iptables-restore must accept every input, no rule may land outside
// KUBE-* chains except upstream's jump rules to them, and every comment
// must read back as iptables.CommentText of what was written.
func TestKernelHostileServiceNames(t *testing.T) {
	requireKernel(t)
	ns := newNetns(t)
	r := newRunner(t, ns, v1.IPv4Protocol)
	newProxier := func() *iptables.Proxier {
		p, err := iptables.New(iptables.Options{Restorer: r, Render: iptables.RenderOptions{
			MasqueradeMark: "0x00004000",
			LocalDetector:  iptables.LocalDetector{IfLocal: []string{"-s", "10.0.0.0/8"}, IfNotLocal: []string{"!", "-s", "10.0.0.0/8"}},
			NodeIPs:        []netip.Addr{netip.MustParseAddr("192.168.0.2")},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	snap, want := hostileSnapshot()
	first, err := newProxier().Sync(context.Background(), snap)
	if err != nil {
		t.Fatalf("iptables-restore refused the hostile names: %v", err)
	}
	// A restarted kproxy compares what it renders with what iptables-save
	// lists: if the listed comments did not match (quoting, escapes,
	// replaced bytes), it would rewrite every chain.
	again, err := newProxier().Sync(context.Background(), snap)
	if err != nil {
		t.Fatalf("second full sync: %v", err)
	}
	if again.RestoreBytes*10 > first.RestoreBytes {
		t.Errorf("a restart over its own rules wrote %d bytes after a first sync of %d: the listed comments do not match the rendered ones",
			again.RestoreBytes, first.RestoreBytes)
	}
	t.Logf("first sync %d bytes, restart over the same rules %d bytes", first.RestoreBytes, again.RestoreBytes)
	comments := 0
	for _, table := range []string{"filter", "nat"} {
		script, err := ruleset.ParseRestore(save(t, r, table), v1.IPv4Protocol)
		if err != nil {
			t.Fatalf("parse iptables-save -t %s: %v", table, err)
		}
		for _, st := range script.Tables[0].Statements {
			if st.Rule == nil {
				continue
			}
			if !strings.HasPrefix(st.Chain, "KUBE-") && !strings.HasPrefix(st.Rule.TargetName(), "KUBE-") {
				t.Errorf("%s: rule outside KUBE-* chains that is no jump to them: -A %s %s", table, st.Chain, st.Rule.String())
			}
			c := st.Rule.Comment()
			if !utf8.ValidString(c) || len(c) > iptables.MaxCommentLen || strings.ContainsAny(c, "\x00\n\r\t\x1b\x7f") {
				t.Errorf("%s %s: unsafe comment %q", table, st.Chain, c)
			}
			if strings.HasPrefix(c, "kpx") {
				comments++
				if !want[c] {
					t.Errorf("%s %s: comment %q is not CommentText of a rendered comment", table, st.Chain, c)
				}
			}
		}
	}
	if comments < len(hostileNames)*5 {
		t.Errorf("only %d comments of hostile service ports read back", comments)
	}
}

// hostileSnapshot is a full snapshot with one service port per hostile
// name (namespace "kpx"+name, name and port name the hostile name), with
// endpoints, a NodePort and a firewalled LB IP; want holds CommentText of
// every comment the renderer may write for them.
func hostileSnapshot() (*proxier.Snapshot, map[string]bool) {
	snap := &proxier.Snapshot{Family: v1.IPv4Protocol, Full: true,
		Services: map[proxier.ServicePortName]*proxier.ServicePort{}, Endpoints: map[proxier.ServicePortName]*proxier.EndpointSet{},
		Changed: map[proxier.ServicePortName]struct{}{}}
	want := map[string]bool{}
	for i, h := range hostileNames {
		n := proxier.ServicePortName{NamespacedName: types.NamespacedName{Namespace: "kpx" + h.name, Name: h.name},
			Port: h.name, Protocol: v1.ProtocolTCP}
		ep := proxier.Endpoint{IP: netip.AddrFrom4([4]byte{10, 180, byte(i), 1}), Port: 80, Ready: true, Serving: true}
		snap.Services[n] = &proxier.ServicePort{Name: n, ClusterIP: netip.AddrFrom4([4]byte{172, 30, 0, byte(i + 1)}),
			Port: 80, Protocol: v1.ProtocolTCP, NodePort: int32(30000 + i),
			LoadBalancerVIPs:         []netip.Addr{netip.AddrFrom4([4]byte{1, 2, 3, byte(i + 1)})},
			LoadBalancerSourceRanges: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}
		snap.Endpoints[n] = &proxier.EndpointSet{All: []proxier.Endpoint{ep}, Cluster: []proxier.Endpoint{ep}, HasAny: true}
		str := n.String()
		for _, parts := range [][]string{{str}, {str, " cluster IP"}, {str, " loadbalancer IP"}, {str, " -> ", ep.String()},
			{"masquerade traffic for ", str, " external destinations"}, {str, " traffic not accepted by ", iptables.ServiceChainNames(str, v1.ProtocolTCP).Firewall},
			{"other traffic to ", str, " will be dropped by KUBE-PROXY-FIREWALL"}} {
			want[iptables.CommentText(parts...)] = true
		}
	}
	return snap, want
}
