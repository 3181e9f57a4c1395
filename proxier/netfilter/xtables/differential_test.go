package xtables_test

import (
	"context"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// step is one restore applied to both the fake and the kernel.
type step struct {
	name    string
	input   string
	wantErr bool
}

func block(table string, lines ...string) string {
	return "*" + table + "\n" + strings.Join(lines, "\n") + "\nCOMMIT\n"
}

// ipv4Steps replays what a kube-proxy-like writer does over time, plus the
// mistakes the fake must refuse exactly like the kernel.
func ipv4Steps(t *testing.T) []step {
	return []step{
		{name: "full sync of rule set (a)", input: string(readFixture(t, "fixture_a.restore"))},
		{name: "more services", input: string(readFixture(t, "extra.restore"))},
		{name: "jump rules", input: string(readFixture(t, "jumps.restore"))},
		{name: "partial sync: third endpoint", input: block("nat",
			":KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]",
			":KUBE-SEP-C6EBXVWJJZMIWKLZ - [0:0]",
			"-A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns1/svc1:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ",
			"-A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80",
			`-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ`,
			`-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-SXIVWICOYRO3J4NJ`,
			`-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-LXVODXWDISEETFEF`,
			`-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.3:80" -j KUBE-SEP-C6EBXVWJJZMIWKLZ`)},
		{name: "stale endpoint chain still referenced", wantErr: true, input: block("nat",
			":KUBE-SEP-C6EBXVWJJZMIWKLZ - [0:0]", "-X KUBE-SEP-C6EBXVWJJZMIWKLZ")},
		{name: "endpoint removed and its chain deleted", input: block("nat",
			":KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]",
			":KUBE-SEP-C6EBXVWJJZMIWKLZ - [0:0]",
			`-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-SXIVWICOYRO3J4NJ`,
			`-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -j KUBE-SEP-LXVODXWDISEETFEF`,
			"-X KUBE-SEP-C6EBXVWJJZMIWKLZ")},
		{name: "jump to a missing chain", wantErr: true, input: block("nat", "-A KUBE-SERVICES -j KUBE-SVC-MISSING")},
		{name: "list prefix, then chains declared right before their rules", input: block("nat", "-S", ":I1 - [0:0]", ":I2 - [0:0]", "-A I2 -j I1", ":I3 - [0:0]", "-A I3 -j I2")},
		{name: "list a missing chain", wantErr: true, input: block("nat", "-S KUBE-MISSING")},
		{name: "jump to a chain declared later", wantErr: true, input: block("nat", ":N1 - [0:0]", "-A N1 -j N2", ":N2 - [0:0]")},
		{name: "append to a missing chain", wantErr: true, input: block("filter", "-A KUBE-MISSING -j ACCEPT")},
		{name: "delete a missing chain", wantErr: true, input: block("filter", "-X KUBE-MISSING")},
		{name: "delete a built-in chain", wantErr: true, input: block("filter", "-X FORWARD")},
		{name: "delete a non-empty chain", wantErr: true, input: block("filter", "-X KUBE-FORWARD")},
		{name: "28-character chain name", input: block("filter", ":KUBE-ABCDEFGHIJKLMNOPQRSTUVW - [0:0]")},
		{name: "29-character chain name", wantErr: true, input: block("filter", ":KUBE-ABCDEFGHIJKLMNOPQRSTUVWX - [0:0]")},
		{name: "IPv6 address", wantErr: true, input: block("filter", "-A KUBE-SERVICES -d fd00::1 -j DROP")},
		{name: "unknown option", wantErr: true, input: block("filter", "-A KUBE-SERVICES --bogus -j DROP")},
		{name: "DNAT in filter", wantErr: true, input: block("filter", "-A KUBE-SERVICES -p tcp -j DNAT --to-destination 10.0.0.1:80")},
		{name: "DNAT reachable from POSTROUTING", wantErr: true, input: block("nat", "-A KUBE-POSTROUTING -j KUBE-SEP-SXIVWICOYRO3J4NJ")},
		{name: "MASQUERADE reachable from PREROUTING", wantErr: true, input: block("nat", "-A KUBE-SERVICES -j KUBE-POSTROUTING")},
		{name: "loop reachable from a built-in chain", wantErr: true, input: block("filter", ":LA - [0:0]", ":LB - [0:0]", "-A LA -j LB", "-A LB -j LA", "-A INPUT -j LA")},
		{name: "loop not reachable from a built-in chain", input: block("filter", ":LC - [0:0]", ":LD - [0:0]", "-A LC -j LD", "-A LD -j LC")},
		{name: "chain jumping to itself", wantErr: true, input: block("filter", ":LE - [0:0]", "-A LE -j LE", "-A OUTPUT -j LE")},
		{name: "REJECT in nat", wantErr: true, input: block("nat", ":R - [0:0]", "-A R -j REJECT")},
		{name: "rule forms kube-proxy and kubelet write", input: block("filter",
			":KUBE-FIREWALL - [0:0]",
			`-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`,
			`-A KUBE-FIREWALL -m comment --comment "it's \"quoted\"" -i veth+ ! -o eth0 -m udp -p udp --dport 53 -j REJECT --reject-with icmp-host-unreachable`,
			"-A KUBE-FIREWALL -m sctp -p sctp --sport 1000:2000 ! --dport 80 -m addrtype ! --src-type LOCAL --dst-type LOCAL,BROADCAST -j ACCEPT",
			"-A KUBE-FIREWALL -m mark --mark 0x8000 -j DROP",
			"-A KUBE-FIREWALL -p tcp --dport 99",
			"-I KUBE-FIREWALL 2 -m conntrack --ctstate ESTABLISHED,RELATED,INVALID -j ACCEPT",
			"-D KUBE-FIREWALL -m mark --mark 0x00008000 -j DROP",
			"-A OUTPUT -j KUBE-FIREWALL")},
		{name: "MARK and MASQUERADE spellings", input: block("nat",
			":KUBE-MARK-DROP - [0:0]", ":KUBE-POSTROUTING - [0:0]",
			"-A KUBE-MARK-DROP -j MARK --set-mark 0x8000",
			"-A KUBE-MARK-DROP -j MARK --and-mark 0x8000",
			"-A KUBE-MARK-DROP -j MARK --set-mark 0x8000/0xc000",
			"-A KUBE-MARK-DROP -m statistic --mode random --probability 0.1428571429 -j RETURN",
			"-A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN",
			"-A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000",
			`-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully`)},
		{name: "affinity rules", input: block("nat",
			":KUBE-SVC-AFF - [0:0]",
			`-A KUBE-SVC-AFF -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m recent --name KUBE-SEP-AAAAAAAAAAAAAAA3 --rcheck --seconds 10800 --reap -j KUBE-SEP-AAAAAAAAAAAAAAA3`)},
		// iptables-restore commits each table block on its own, and so does
		// the fake, so the filter chain below must exist in both.
		{name: "second table fails after the first committed", wantErr: true, input: block("filter", ":KUBE-COMMITTED - [0:0]") +
			block("nat", "-A KUBE-SERVICES -j KUBE-SVC-MISSING")},
		{name: "flush everything", input: block("nat", "-F", "-X") + block("filter", "-F", "-X")},
	}
}

func TestKernelDifferentialIPv4(t *testing.T) {
	runDifferential(t, v1.IPv4Protocol, ipv4Steps(t))
}

func TestKernelDifferentialIPv6(t *testing.T) {
	runDifferential(t, v1.IPv6Protocol, []step{
		{name: "service", input: block("nat",
			":KUBE-SERVICES - [0:0]", ":KUBE-SVC-A - [0:0]", ":KUBE-SEP-A - [0:0]", ":KUBE-SEP-B - [0:0]",
			"-A KUBE-SEP-A -s fd00:10:180::1/128 -j MARK --or-mark 0x4000",
			"-A KUBE-SEP-A -m tcp -p tcp -j DNAT --to-destination [fd00:10:180::1]:80",
			"-A KUBE-SEP-B -m recent --name KUBE-SEP-B --set -m udp -p udp -j DNAT --to-destination fd00:10:180::2",
			"-A KUBE-SVC-A -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-A",
			"-A KUBE-SVC-A -j KUBE-SEP-B",
			"-A KUBE-SERVICES -d fd00:172:30::41 ! -s fd00:10::/64 -m tcp -p tcp --dport 80 -j KUBE-SVC-A",
			"-A PREROUTING -j KUBE-SERVICES")},
		{name: "reject", input: block("filter", ":KUBE-SERVICES - [0:0]",
			"-A KUBE-SERVICES -d fd00:172:30::46 -m tcp -p tcp --dport 80 -j REJECT",
			"-A KUBE-SERVICES -d fd00:172:30::47 -j REJECT --reject-with icmp6-adm-prohibited")},
		{name: "IPv4 address", wantErr: true, input: block("filter", "-A KUBE-SERVICES -d 10.0.0.1 -j DROP")},
		{name: "IPv4 DNAT", wantErr: true, input: block("nat", "-A KUBE-SEP-B -p tcp -j DNAT --to-destination 10.0.0.1:80")},
		{name: "IPv4 reject type", wantErr: true, input: block("filter", "-A KUBE-SERVICES -j REJECT --reject-with icmp-host-unreachable")},
	})
}

// runDifferential applies each step to a fake and to a fresh namespace and
// requires the same success or failure and the same tables afterwards, both
// in iptables-save's display form and after Normalize.
func runDifferential(t *testing.T, family v1.IPFamily, steps []step) {
	r := newRunner(t, newNetns(t), family)
	fake := ruleset.NewFake(ruleset.FakeOptions{Family: family})
	ctx := context.Background()
	for _, s := range steps {
		kernelErr := r.Restore(ctx, []byte(s.input))
		fakeErr := fake.Restore(ctx, []byte(s.input))
		if (kernelErr != nil) != s.wantErr || (fakeErr != nil) != s.wantErr {
			t.Fatalf("step %q: kernel error = %v, fake error = %v, want error = %v", s.name, kernelErr, fakeErr, s.wantErr)
		}
		for _, table := range []string{"filter", "nat"} {
			k, f := save(t, r, table), save(t, fake, table)
			if stripComments(k) != string(f) {
				t.Errorf("step %q: %s table display differs\nkernel:\n%s\nfake:\n%s", s.name, table, stripComments(k), f)
			}
			if nk, nf := normalize(t, k, family), normalize(t, f, family); nk != nf {
				t.Errorf("step %q: %s table differs after Normalize\nkernel:\n%s\nfake:\n%s", s.name, table, nk, nf)
			}
		}
	}
}
