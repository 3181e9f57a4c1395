package xtables_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
	"github.com/kproxy/kproxy/proxier/netfilter/xtables"
	"github.com/kproxy/kproxy/test/kerneltest"
)

// These tests run iptables inside a network namespace each test creates and
// deletes; they never touch the root namespace.

// newNetns creates a network namespace for the test and removes it when the
// test ends, failed or not.
func newNetns(t *testing.T) string {
	t.Helper()
	kerneltest.NeedTools(t, "iptables kernel test", "iptables-restore", "ip6tables-restore")
	return kerneltest.Netns(t, "kpx-")
}

func newRunner(t *testing.T, ns string, family v1.IPFamily) *xtables.Runner {
	t.Helper()
	r, err := xtables.New(xtables.Options{Family: family, CommandPrefix: []string{"ip", "netns", "exec", ns}, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile("../ruleset/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// stripComments drops iptables-save's dated header and footer lines.
func stripComments(b []byte) string {
	var out []string
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if !strings.HasPrefix(l, "#") && l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

func save(t *testing.T, r interface {
	Save(context.Context, string) ([]byte, error)
}, table string) []byte {
	t.Helper()
	out, err := r.Save(context.Background(), table)
	if err != nil {
		t.Fatalf("Save(%s): %v", table, err)
	}
	return out
}

func normalize(t *testing.T, data []byte, family v1.IPFamily) string {
	t.Helper()
	out, err := ruleset.Normalize(data, family)
	if err != nil {
		t.Fatalf("Normalize: %v\n%s", err, data)
	}
	return string(out)
}

func TestKernelRestoreAndSave(t *testing.T) {
	r := newRunner(t, newNetns(t), v1.IPv4Protocol)
	input := readFixture(t, "fixture_a.restore")
	if err := r.Restore(context.Background(), input); err != nil {
		t.Fatal(err)
	}
	got := append(save(t, r, "filter"), save(t, r, "nat")...)
	if a, b := normalize(t, input, v1.IPv4Protocol), normalize(t, got, v1.IPv4Protocol); a != b {
		t.Errorf("kernel state differs from the input:\n%s\nkernel:\n%s", a, b)
	}
	if !strings.Contains(string(got), "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n") {
		t.Errorf("iptables-save output lacks the KUBE-MARK-MASQ rule:\n%s", got)
	}
}

func TestKernelFailedRestoreKeepsRules(t *testing.T) {
	r := newRunner(t, newNetns(t), v1.IPv4Protocol)
	if err := r.Restore(context.Background(), readFixture(t, "fixture_a.restore")); err != nil {
		t.Fatal(err)
	}
	before := stripComments(save(t, r, "nat"))
	bad := "*nat\n:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]\n-A KUBE-SVC-XPGD46QRK7WJZT7O -j KUBE-SEP-NOPE\nCOMMIT\n"
	err := r.Restore(context.Background(), []byte(bad))
	var re *xtables.RestoreError
	if !errors.As(err, &re) {
		t.Fatalf("Restore error = %v, want *RestoreError", err)
	}
	// iptables-nft checks jumps when the table is committed and blames the
	// COMMIT line (4); the context still shows the offending rule.
	if re.Line < 3 || re.Line > 4 || !slices.Contains(re.Context, "3: -A KUBE-SVC-XPGD46QRK7WJZT7O -j KUBE-SEP-NOPE") {
		t.Errorf("RestoreError line %d context %q; stderr %q", re.Line, re.Context, re.Stderr)
	}
	if after := stripComments(save(t, r, "nat")); after != before {
		t.Errorf("failed restore changed the nat table:\n%s\nbefore:\n%s", after, before)
	}
}

func TestKernelIPv6(t *testing.T) {
	ns := newNetns(t)
	r := newRunner(t, ns, v1.IPv6Protocol)
	input := []byte(`*nat
:KUBE-SVC-A - [0:0]
:KUBE-SEP-A - [0:0]
-A KUBE-SEP-A -m comment --comment "ns1/svc1:p80" -s fd00:10:180::1 -j MARK --or-mark 0x4000
-A KUBE-SEP-A -m recent --name KUBE-SEP-A --set -m tcp -p tcp -j DNAT --to-destination [fd00:10:180::1]:80
-A KUBE-SVC-A -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d fd00:172:30::41 --dport 80 ! -s fd00:10::/64 -j KUBE-SEP-A
COMMIT
*filter
:KUBE-SERVICES - [0:0]
-A KUBE-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d fd00:172:30::46 --dport 80 -j REJECT
COMMIT
`)
	if err := r.Restore(context.Background(), input); err != nil {
		t.Fatal(err)
	}
	fake := ruleset.NewFake(ruleset.FakeOptions{Family: v1.IPv6Protocol})
	if err := fake.Restore(context.Background(), input); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"filter", "nat"} {
		if got, want := stripComments(save(t, r, table)), string(save(t, fake, table)); got != want {
			t.Errorf("ip6tables-save -t %s:\n%s\nfake:\n%s", table, got, want)
		}
	}
	// An IPv4 address is refused by ip6tables-restore, as by the fake.
	v4 := []byte("*nat\n:X - [0:0]\n-A X -d 10.0.0.1 -j RETURN\nCOMMIT\n")
	if err := r.Restore(context.Background(), v4); err == nil {
		t.Error("ip6tables-restore accepted an IPv4 address")
	}
	if err := fake.Restore(context.Background(), v4); err == nil {
		t.Error("IPv6 fake accepted an IPv4 address")
	}
}

func TestKernelVersion(t *testing.T) {
	r := newRunner(t, newNetns(t), v1.IPv4Protocol)
	v, err := r.Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if v.Major != 1 || v.Backend == "" {
		t.Errorf("Version = %v", v)
	}
	rf, err := r.HasRandomFully(context.Background())
	if err != nil || rf != v.AtLeast(1, 6, 2) {
		t.Errorf("HasRandomFully = %v, %v for %v", rf, err, v)
	}
}
