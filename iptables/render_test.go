package iptables

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier/netfilter"
)

// Chain suffixes of ns1/svc1:p80 (tcp) and its endpoints, from the reference vectors.
const (
	svc1SVC  = "KUBE-SVC-XPGD46QRK7WJZT7O"
	svc1SVL  = "KUBE-SVL-XPGD46QRK7WJZT7O"
	svc1EXT  = "KUBE-EXT-XPGD46QRK7WJZT7O"
	svc1FW   = "KUBE-FW-XPGD46QRK7WJZT7O"
	svc1SEP1 = "KUBE-SEP-SXIVWICOYRO3J4NJ" // 10.180.0.1:80
	svc1SEP2 = "KUBE-SEP-LXVODXWDISEETFEF" // 10.180.0.2:80
)

func TestRenderFeatures(t *testing.T) {
	base := func(opts ...svcOpt) *world {
		return newWorld().add(svc("ns1", "svc1", append([]svcOpt{clusterIP("172.30.0.41")}, opts...)...),
			eps(ep("10.180.0.1", 80), ep("10.180.0.2", 80, local())))
	}
	tests := []struct {
		name   string
		world  *world
		opts   func(*RenderOptions)
		want   []string // exact lines, in this order
		absent []string // substrings that must not occur
	}{{
		name: "no endpoints rejects every entry point and writes no nat chain",
		world: newWorld().add(svc("ns1", "svc1", clusterIP("172.30.0.41"), withNodePort(3001),
			withExternalIPs("192.168.99.1"), withLB("1.2.3.4")), eps()),
		want: []string{
			`-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j REJECT`,
			`-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp -d 192.168.99.1 --dport 80 -j REJECT`,
			`-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j REJECT`,
			`-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j REJECT`,
		},
		absent: []string{svc1SVC, svc1EXT, "KUBE-SEP-", "-A KUBE-NODEPORTS -m comment --comment \"ns1"},
	}, {
		name:  "external IP and load balancer IP jump to EXT",
		world: base(withExternalIPs("192.168.99.1"), withLB("1.2.3.4")),
		want: []string{
			`-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j ` + svc1SVC,
			`-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 external IP" -m tcp -p tcp -d 192.168.99.1 --dport 80 -j ` + svc1EXT,
			`-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 loadbalancer IP" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j ` + svc1EXT,
			`-A ` + svc1EXT + ` -m comment --comment "masquerade traffic for ns1/svc1:p80 external destinations" -j KUBE-MARK-MASQ`,
			`-A ` + svc1EXT + ` -j ` + svc1SVC,
		},
		absent: []string{svc1FW, svc1SVL, "KUBE-EXTERNAL-SERVICES -m"},
	}, {
		name:  "ETP Local with a local endpoint short-circuits pods and host, then goes to SVL",
		world: base(withNodePort(3001), withETPLocal()),
		want: []string{
			`:` + svc1SVL + ` - [0:0]`,
			`-A ` + svc1EXT + ` -m comment --comment "pod traffic for ns1/svc1:p80 external destinations" -s 10.0.0.0/8 -j ` + svc1SVC,
			`-A ` + svc1EXT + ` -m comment --comment "masquerade LOCAL traffic for ns1/svc1:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ`,
			`-A ` + svc1EXT + ` -m comment --comment "route LOCAL traffic for ns1/svc1:p80 external destinations" -m addrtype --src-type LOCAL -j ` + svc1SVC,
			`-A ` + svc1EXT + ` -j ` + svc1SVL,
			`-A ` + svc1SVC + ` -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ`,
			`-A ` + svc1SVL + ` -m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -j ` + svc1SEP2,
		},
		absent: []string{"masquerade traffic for", "has no local endpoints", svc1SVL + ` -m comment --comment "ns1/svc1:p80 cluster IP"`},
	}, {
		name:  "ITP Local without local endpoints drops ClusterIP traffic",
		world: newWorld().add(svc("ns1", "svc1", clusterIP("172.30.0.41"), withITPLocal()), eps(ep("10.180.0.1", 80))),
		want: []string{
			`-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no local endpoints" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j DROP`,
		},
		absent: []string{svc1SVL, svc1SVC, "KUBE-SEP-"},
	}, {
		name:  "ITP Local uses SVL with the masquerade rule and only local endpoints",
		world: base(withITPLocal()),
		want: []string{
			`:` + svc1SEP2 + ` - [0:0]`,
			`-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j ` + svc1SVL,
			`-A ` + svc1SVL + ` -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ`,
			`-A ` + svc1SVL + ` -m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -j ` + svc1SEP2,
		},
		absent: []string{svc1SVC, svc1SEP1},
	}, {
		name:  "ClientIP affinity checks recent lists before the spread and sets them on DNAT",
		world: base(withAffinity(10800)),
		want: []string{
			`-A ` + svc1SEP1 + ` -m comment --comment "ns1/svc1:p80" -m recent --name ` + svc1SEP1 + ` --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80`,
			`-A ` + svc1SVC + ` -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ`,
			`-A ` + svc1SVC + ` -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m recent --name ` + svc1SEP1 + ` --rcheck --seconds 10800 --reap -j ` + svc1SEP1,
			`-A ` + svc1SVC + ` -m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -m recent --name ` + svc1SEP2 + ` --rcheck --seconds 10800 --reap -j ` + svc1SEP2,
			`-A ` + svc1SVC + ` -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.5000000000 -j ` + svc1SEP1,
		},
	}, {
		name:  "source ranges containing the node IP also admit the VIP as source",
		world: base(withLB("1.2.3.4", "1.2.3.5"), withSourceRanges("192.168.0.0/16", "203.0.113.7/25")),
		want: []string{
			`-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 loadbalancer IP" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j ` + svc1FW,
			`-A ` + svc1FW + ` -m comment --comment "ns1/svc1:p80 loadbalancer IP" -s 192.168.0.0/16 -j ` + svc1EXT,
			`-A ` + svc1FW + ` -m comment --comment "ns1/svc1:p80 loadbalancer IP" -s 203.0.113.0/25 -j ` + svc1EXT,
			`-A ` + svc1FW + ` -m comment --comment "ns1/svc1:p80 loadbalancer IP" -s 1.2.3.4 -j ` + svc1EXT,
			`-A ` + svc1FW + ` -m comment --comment "ns1/svc1:p80 loadbalancer IP" -s 1.2.3.5 -j ` + svc1EXT,
			`-A ` + svc1FW + ` -m comment --comment "other traffic to ns1/svc1:p80 will be dropped by KUBE-PROXY-FIREWALL"`,
		},
	}, {
		name:   "masqueradeAll masquerades all ClusterIP traffic",
		world:  base(),
		opts:   func(o *RenderOptions) { o.MasqueradeAll = true },
		want:   []string{`-A ` + svc1SVC + ` -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-MARK-MASQ`},
		absent: []string{"! -s 10.0.0.0/8"},
	}, {
		name:   "no local detector writes no off-cluster masquerade and no pod short-circuit",
		world:  base(withNodePort(3001), withETPLocal()),
		opts:   func(o *RenderOptions) { o.LocalDetector = netfilter.LocalDetector{} },
		absent: []string{"cluster IP\" -m tcp -p tcp -d 172.30.0.41 --dport 80 !", "pod traffic for"},
	}, {
		name:  "restricted nodePortAddresses match each node IP and skip loopback when not allowed",
		world: base(withNodePort(3001)),
		opts: func(o *RenderOptions) {
			o.NodePortAddresses = NodePortAddresses{Restricted: true, IPs: addrs("192.168.0.2", "127.0.0.1", "10.1.1.1")}
		},
		want: []string{
			`-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -d 192.168.0.2 -j KUBE-NODEPORTS`,
			`-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -d 10.1.1.1 -j KUBE-NODEPORTS`,
		},
		absent: []string{"-d 127.0.0.1", "--dst-type LOCAL -j KUBE-NODEPORTS", ":KUBE-FIREWALL"},
	}, {
		name:  "localhost NodePorts with a loopback node IP add the localnet guard",
		world: base(withNodePort(3001)),
		opts: func(o *RenderOptions) {
			o.LocalhostNodePorts = true
			o.NodePortAddresses = NodePortAddresses{Restricted: true, IPs: addrs("127.0.0.1")}
		},
		want: []string{
			`:KUBE-FIREWALL - [0:0]`,
			`-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -d 127.0.0.1 -j KUBE-NODEPORTS`,
		},
	}, {
		name:  "IPv6 always excludes ::1 from NodePorts",
		world: newWorld().add(svc("ns1", "svc1", clusterIP("fd00::41"), withNodePort(3001)), eps(ep("fd00::1", 80))),
		opts: func(o *RenderOptions) {
			o.Family, o.LocalhostNodePorts = v1.IPv6Protocol, true
			o.LocalDetector = netfilter.LocalDetector{IfLocal: []string{"-s", "fd00::/64"}, IfNotLocal: []string{"!", "-s", "fd00::/64"}}
		},
		want: []string{
			`-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL ! -d ::1/128 -j KUBE-NODEPORTS`,
			`-A KUBE-SEP-T5UNFIPVCZXM3U7X -m comment --comment "ns1/svc1:p80" -m tcp -p tcp -j DNAT --to-destination [fd00::1]:80`,
		},
		absent: []string{"127.0.0.0/8", ":KUBE-FIREWALL"},
	}, {
		name:  "random-fully and tcp_be_liberal",
		world: base(),
		opts:  func(o *RenderOptions) { o.RandomFully, o.ConntrackTCPBeLiberal = true, true },
		want: []string{
			`-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully`,
		},
		absent: []string{"--ctstate INVALID"},
	}, {
		name:  "large clusters omit endpoint comments",
		world: base(),
		opts:  func(o *RenderOptions) { o.LargeClusterEndpointsThreshold = 1 },
		want: []string{
			`-A ` + svc1SEP1 + ` -s 10.180.0.1 -j KUBE-MARK-MASQ`,
			`-A ` + svc1SEP1 + ` -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80`,
			`-A ` + svc1SVC + ` -m statistic --mode random --probability 0.5000000000 -j ` + svc1SEP1,
			`-A ` + svc1SVC + ` -j ` + svc1SEP2,
		},
		absent: []string{"->", "--comment \"ns1/svc1:p80\" -"},
	}, {
		name: "three endpoints spread 1/3, 1/2, rest",
		world: newWorld().add(svc("ns1", "svc1", clusterIP("172.30.0.41")),
			eps(ep("10.180.0.1", 80), ep("10.180.0.2", 80), ep("10.180.0.3", 80))),
		want: []string{
			`-A ` + svc1SVC + ` -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.3333333333 -j ` + svc1SEP1,
			`-A ` + svc1SVC + ` -m comment --comment "ns1/svc1:p80 -> 10.180.0.2:80" -m statistic --mode random --probability 0.5000000000 -j ` + svc1SEP2,
		},
	}, {
		name:  "UDP ports use the udp match and hash",
		world: newWorld().add(svc("ns1", "svc1", clusterIP("172.30.0.41"), withProtocol(v1.ProtocolUDP)), eps(ep("10.180.0.1", 53))),
		want: []string{
			`-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m udp -p udp -d 172.30.0.41 --dport 80 -j KUBE-SVC-OJWW7NSBVZTDHXNW`,
		},
	}, {
		name:  "serving terminating endpoints are used when nothing is ready",
		world: newWorld().add(svc("ns1", "svc1", clusterIP("172.30.0.41")), eps(ep("10.180.0.1", 80, terminatingServing()))),
		want:  []string{`-A ` + svc1SVC + ` -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j ` + svc1SEP1},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions()
			if tc.opts != nil {
				tc.opts(&opts)
			}
			out := string(Render(tc.world.snap, opts).Bytes())
			assertSubsequence(t, "output", out, strings.Join(tc.want, "\n"))
			for _, a := range tc.absent {
				if strings.Contains(out, a) {
					t.Errorf("output contains %q:\n%s", a, out)
				}
			}
			assertChainsDeclared(t, out)
		})
	}
}

// assertChainsDeclared checks that every chain a rule is appended to or
// jumps to is declared in the same table, or is built in.
func assertChainsDeclared(t *testing.T, out string) {
	t.Helper()
	declared := map[string]bool{"ACCEPT": true, "DROP": true, "REJECT": true, "RETURN": true, "MARK": true, "DNAT": true, "MASQUERADE": true}
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "*"):
			declared = map[string]bool{"ACCEPT": true, "DROP": true, "REJECT": true, "RETURN": true, "MARK": true, "DNAT": true, "MASQUERADE": true}
		case strings.HasPrefix(line, ":"):
			declared[strings.Fields(line[1:])[0]] = true
		case strings.HasPrefix(line, "-A "):
			f := strings.Fields(line)
			if !declared[f[1]] {
				t.Errorf("rule appended to undeclared chain: %s", line)
			}
			for i := range f {
				if f[i] == "-j" && !declared[f[i+1]] {
					t.Errorf("jump to undeclared chain: %s", line)
				}
			}
		}
	}
}

func TestRenderPartialWritesOnlyChangedServices(t *testing.T) {
	w := multiServiceWorld()
	full := Render(w.snap, testOptions())
	snap := *w.snap
	snap.Full = false
	snap.Changed = map[proxierName]struct{}{w.name("ns4", "svc4"): {}}
	partial := Render(&snap, testOptions())
	out := string(partial.Bytes())

	if !strings.Contains(out, ":KUBE-SVC-4SW47YFZTEDKD3PK - [0:0]") || !strings.Contains(out, ":KUBE-SEP-UKSFD7AGPMPPLUHC - [0:0]") {
		t.Errorf("changed service's chains not written:\n%s", out)
	}
	if strings.Contains(out, ":KUBE-SVC-"+"XPGD46QRK7WJZT7O") || strings.Contains(out, "-A KUBE-EXT-GNZBNJ2PO5MGZ6GT") {
		t.Errorf("unchanged services' chains written:\n%s", out)
	}
	// Top-level chains are complete: they still reference unchanged services.
	if !strings.Contains(out, `-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP"`) {
		t.Errorf("KUBE-SERVICES lost unchanged services:\n%s", out)
	}
	if got, want := partial.RuleCounts(), full.RuleCounts(); got["nat"] != want["nat"] || got["filter"] != want["filter"] {
		t.Errorf("rule counts: partial %v, full %v", got, want)
	}
	if got, want := strings.Join(partial.ServiceChains(), ","), strings.Join(full.ServiceChains(), ","); got != want {
		t.Errorf("active chains differ: partial %s, full %s", got, want)
	}
}

func TestRenderRuleCounts(t *testing.T) {
	out := Render(newWorld().add(svc("ns1", "svc1", clusterIP("172.30.0.41"), withNodePort(3001)),
		eps(ep("10.180.0.1", 80), ep("10.180.0.2", 80))).snap, testOptions())
	text := string(out.Bytes())
	filter, nat, _ := strings.Cut(text, "*nat\n")
	counts := out.RuleCounts()
	if n := strings.Count(filter, "\n-A "); counts["filter"] != n {
		t.Errorf("filter count %d, text has %d rules", counts["filter"], n)
	}
	if n := strings.Count(nat, "\n-A "); counts["nat"] != n {
		t.Errorf("nat count %d, text has %d rules", counts["nat"], n)
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	a := Render(multiServiceWorld().snap, testOptions()).Bytes()
	for range 5 {
		if b := Render(multiServiceWorld().snap, testOptions()).Bytes(); string(a) != string(b) {
			t.Fatalf("two renders of the same snapshot differ")
		}
	}
}
