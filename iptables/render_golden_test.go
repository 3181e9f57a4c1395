package iptables

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
	pt "github.com/kproxy/kproxy/proxier/proxiertest"
)

// goldenA is rule set (a) of the reference, upstream's iptables-restore input
// for a NodePort service with two endpoints.
const goldenA = `*filter
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
*nat
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-EXT-XPGD46QRK7WJZT7O - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-LXVODXWDISEETFEF - [0:0]
:KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
-A KUBE-NODEPORTS -m comment --comment ns1/svc1:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment "masquerade traffic for ns1/svc1:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-XPGD46QRK7WJZT7O -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE
-A KUBE-SEP-LXVODXWDISEETFEF -m comment --comment ns1/svc1:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
-A KUBE-SEP-LXVODXWDISEETFEF -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-SXIVWICOYRO3J4NJ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -j KUBE-SEP-LXVODXWDISEETFEF
COMMIT
`

// Rule set (a) was captured from release-1.26, before localhost NodePorts
// became configurable: its NodePort tail has no "! -d 127.0.0.0/8" and its
// filter table no KUBE-FIREWALL. Current upstream writes one or the other, so
// the test derives both variants from the verbatim text with exactly that change.
const (
	goldenTail          = `-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`
	goldenTailNoLocal   = `-m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS`
	goldenFirewallChain = ":KUBE-EXTERNAL-SERVICES - [0:0]\n"
	goldenForwardRules  = "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n"
	localnetRule        = `-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP` + "\n"
)

func TestRenderGoldenNodePort(t *testing.T) {
	tests := []struct {
		name          string
		localhostPort bool
		want          string
	}{
		{"localhost NodePorts off", false, strings.Replace(goldenA, goldenTail, goldenTailNoLocal, 1)},
		{"localhost NodePorts on", true, strings.Replace(
			strings.Replace(goldenA, goldenFirewallChain, goldenFirewallChain+":KUBE-FIREWALL - [0:0]\n", 1),
			goldenForwardRules, localnetRule+goldenForwardRules, 1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t).ApplyService(pt.Service("ns1", "svc1", pt.ClusterIP("172.30.0.41"), pt.NodePort(3001)),
				pt.Endpoint("10.180.0.1"), pt.Endpoint("10.180.0.2"))
			opts := testOptions()
			opts.LocalhostNodePorts = tc.localhostPort
			got := string(Render(w.Snapshot(), opts).Bytes())
			// The one intended difference: kproxy quotes every comment,
			// upstream writes single-word ones bare. The kernel stores the
			// same text either way.
			want := strings.ReplaceAll(tc.want, "--comment ns1/svc1:p80 ", `--comment "ns1/svc1:p80" `)
			if got != want {
				t.Errorf("rendered rules differ from upstream's:\n%s", lineDiff(want, got))
			}
			if a, b := normalizeText(t, tc.want), normalizeText(t, got); a != b {
				t.Errorf("normalized rules differ from upstream's:\n%s", lineDiff(a, b))
			}
		})
	}
}

// normalizeText is ruleset.Normalize for an IPv4 restore input.
func normalizeText(t *testing.T, s string) string {
	t.Helper()
	out, err := ruleset.Normalize([]byte(s), "")
	if err != nil {
		t.Fatalf("normalize: %v\n%s", err, s)
	}
	return string(out)
}

// lineDiff lists lines missing from got (-) and unexpected in got (+), then both texts.
func lineDiff(want, got string) string {
	var b strings.Builder
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	in := func(l string, set []string) bool {
		for _, s := range set {
			if s == l {
				return true
			}
		}
		return false
	}
	for _, l := range wl {
		if !in(l, gl) {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range gl {
		if !in(l, wl) {
			b.WriteString("+ " + l + "\n")
		}
	}
	b.WriteString("--- want\n" + want + "--- got\n" + got)
	return b.String()
}

// goldenBFilter and goldenBNAT are excerpt (b) of the reference, from
// upstream's TestOverallIPTablesRulesWithMultipleServices.
const goldenBFilter = `-A KUBE-NODEPORTS -m comment --comment "ns2/svc2:p80 health check node port" -m tcp -p tcp --dport 30000 -j ACCEPT
-A KUBE-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.46 --dport 80 -j REJECT
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j DROP
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j DROP
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP
-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-PROXY-FIREWALL -m comment --comment "ns5/svc5:p80 traffic not accepted by KUBE-FW-NUKIZ6OKUXPJNT4C" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j DROP`

const goldenBNAT = `-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 external IP" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 loadbalancer IP" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 loadbalancer IP" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j KUBE-FW-NUKIZ6OKUXPJNT4C
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "masquerade LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "route LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 loadbalancer IP" -s 203.0.113.0/25 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL"
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.4:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-UKSFD7AGPMPPLUHC
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.5:80" -j KUBE-SEP-C6EBXVWJJZMIWKLZ`

// multiServiceWorld is the service set of upstream's multi-service test.
func multiServiceWorld(t testing.TB) *pt.World {
	return newWorld(t).
		ApplyService(pt.Service("ns1", "svc1", pt.ClusterIP("172.30.0.41")), pt.Endpoint("10.180.0.1")).
		ApplyService(pt.Service("ns2", "svc2", pt.ClusterIP("172.30.0.42"), pt.NodePort(3001), pt.ExternalIPs("192.168.99.22"),
			pt.LoadBalancer("1.2.3.4"), pt.ExternalLocal(), pt.HealthCheckNodePort(30000)), pt.Endpoint("10.180.0.2")).
		ApplyService(pt.Service("ns3", "svc3", pt.ClusterIP("172.30.0.43"), pt.NodePort(3003)), pt.Endpoint("10.180.0.3")).
		ApplyService(svc4(), pt.Endpoint("10.180.0.4"), pt.Endpoint("10.180.0.5", local())).
		ApplyService(pt.Service("ns5", "svc5", pt.ClusterIP("172.30.0.45"), pt.NodePort(3002), pt.LoadBalancer("5.6.7.8"),
			pt.SourceRanges("203.0.113.0/25"), pt.ExternalLocal(), pt.HealthCheckNodePort(30001)),
			pt.Endpoint("10.180.0.3", local())).
		Apply(pt.Service("ns6", "svc6", pt.ClusterIP("172.30.0.46")))
}

// svc4 is multiServiceWorld's ns4/svc4 Service.
func svc4() *v1.Service {
	return pt.Service("ns4", "svc4", pt.ClusterIP("172.30.0.44"), pt.ExternalIPs("192.168.99.33"))
}

func TestRenderGoldenMultipleServicesExcerpt(t *testing.T) {
	opts := testOptions()
	opts.LocalhostNodePorts = true
	out := string(Render(multiServiceWorld(t).Snapshot(), opts).Bytes())
	filter, nat, _ := strings.Cut(out, "*nat\n")
	assertSubsequence(t, "filter", filter, goldenBFilter)
	assertSubsequence(t, "nat", nat, goldenBNAT)
	if strings.Contains(out, "KUBE-SVL-GNZBNJ2PO5MGZ6GT") {
		t.Errorf("svc2 has no local endpoints but a KUBE-SVL chain is referenced:\n%s", out)
	}
}

// assertSubsequence checks that every line of want appears in got, in order.
func assertSubsequence(t *testing.T, what, got, want string) {
	t.Helper()
	lines := strings.Split(got, "\n")
	i := 0
	for _, w := range strings.Split(want, "\n") {
		for i < len(lines) && lines[i] != w {
			i++
		}
		if i == len(lines) {
			t.Errorf("%s: line missing or out of order:\n  %s\nin:\n%s", what, w, got)
			return
		}
	}
}
