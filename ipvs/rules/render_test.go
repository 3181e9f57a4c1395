package rules_test

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/ipvs/ipset"
	"github.com/kproxy/kproxy/ipvs/rules"
	"github.com/kproxy/kproxy/proxier/netfilter"
)

const mark = "0x00004000"

func clusterCIDRDetector() netfilter.LocalDetector {
	return netfilter.LocalDetector{IfLocal: []string{"-s", "10.0.0.0/8"}, IfNotLocal: []string{"!", "-s", "10.0.0.0/8"}}
}

// filled is the state of the sets where exactly the named ones (by
// upstream's IPv4 name) have members; blocked are the VIPs (tcp port 80)
// the node may not reach.
func filled(family v1.IPFamily, names []string, blocked ...string) rules.Sets {
	s := rules.Sets{Family: family, Empty: func(set string) bool { return !slices.Contains(names, set) }}
	for _, vip := range blocked {
		s.NoAccess = append(s.NoAccess, rules.LBNoNodeAccess{VIP: netip.MustParseAddr(vip), Protocol: "tcp", Port: 80})
	}
	return s
}

// TestRenderGolden checks the whole output for the sets of one rich
// snapshot (a NodePort with a local endpoint, an ETP=Local load balancer
// with source ranges that exclude the node, an external IP) against
// upstream's writeIptablesRules text and order.
func TestRenderGolden(t *testing.T) {
	sets := filled(v1.IPv4Protocol, []string{ipset.LoopBack, ipset.ClusterIP, ipset.ExternalIP, ipset.LoadBalancer,
		ipset.LoadBalancerFW, ipset.LoadBalancerLocal, ipset.LoadBalancerSourceNet, ipset.NodePortTCP}, "198.51.100.7")
	r := rules.Render(sets, rules.Options{MasqueradeMark: mark, LocalDetector: clusterCIDRDetector(), RandomFully: true})
	missing := netfilter.IPVSJumpRules()
	want := `*nat
:KUBE-SERVICES - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-LOAD-BALANCER - [0:0]
:KUBE-MARK-MASQ - [0:0]
-I OUTPUT 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-I PREROUTING 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-I POSTROUTING 1 -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN
-A KUBE-POSTROUTING -m comment --comment "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose" -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE
-A KUBE-SERVICES -m comment --comment "Kubernetes service lb portal" -m set --match-set KUBE-LOAD-BALANCER dst,dst -j KUBE-LOAD-BALANCER
-A KUBE-LOAD-BALANCER -m comment --comment "Kubernetes service load balancer ip + port with externalTrafficPolicy=local" -m set --match-set KUBE-LOAD-BALANCER-LOCAL dst,dst -j RETURN
-A KUBE-NODE-PORT -p tcp -m comment --comment "Kubernetes nodeport TCP port for masquerade purpose" -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-CLUSTER-IP dst,dst ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m comment --comment "Kubernetes service external ip + port for masquerade and filter purpose" -m set --match-set KUBE-EXTERNAL-IP dst,dst -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m comment --comment "Kubernetes service external ip + port for masquerade and filter purpose" -m set --match-set KUBE-EXTERNAL-IP dst,dst -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT
-A KUBE-SERVICES -m comment --comment "Kubernetes service external ip + port for masquerade and filter purpose" -m set --match-set KUBE-EXTERNAL-IP dst,dst -m addrtype --dst-type LOCAL -j ACCEPT
-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT
-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT
-A KUBE-SERVICES -m set --match-set KUBE-LOAD-BALANCER dst,dst -j ACCEPT
-A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000
COMMIT
*filter
:KUBE-FORWARD - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-SOURCE-RANGES-FIREWALL - [0:0]
:KUBE-IPVS-FILTER - [0:0]
:KUBE-IPVS-OUT-FILTER - [0:0]
-I FORWARD 1 -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-I INPUT 1 -m comment --comment "kubernetes health check rules" -j KUBE-NODE-PORT
-I INPUT 1 -m comment --comment "kube-proxy firewall rules" -j KUBE-PROXY-FIREWALL
-I FORWARD 1 -m comment --comment "kube-proxy firewall rules" -j KUBE-PROXY-FIREWALL
-I INPUT 1 -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER
-I OUTPUT 1 -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-OUT-FILTER
-A KUBE-PROXY-FIREWALL -m comment --comment "Kubernetes service load balancer ip + port for load balancer with sourceRange" -m set --match-set KUBE-LOAD-BALANCER-FW dst,dst -j KUBE-SOURCE-RANGES-FIREWALL
-A KUBE-SOURCE-RANGES-FIREWALL -m comment --comment "Kubernetes service load balancer ip + port + source cidr for packet filter purpose" -m set --match-set KUBE-LOAD-BALANCER-SOURCE-CIDR dst,dst,src -j RETURN
-A KUBE-SOURCE-RANGES-FIREWALL -j DROP
-A KUBE-IPVS-OUT-FILTER -s 198.51.100.7 -m ipvs --vaddr 198.51.100.7 --vproto tcp --vport 80 -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x00004000/0x00004000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-NODE-PORT -m comment --comment "Kubernetes health check node port" -m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j ACCEPT
-A KUBE-IPVS-FILTER -m set --match-set KUBE-LOAD-BALANCER dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-CLUSTER-IP dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-EXTERNAL-IP dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-EXTERNAL-IP-LOCAL dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j RETURN
-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS dst -j REJECT
COMMIT
`
	if got := string(r.Restore(missing)); got != want {
		t.Errorf("restore input differs:\n%s", lineDiff(got, want))
	}
}

func lineDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	var b strings.Builder
	for i := 0; i < max(len(g), len(w)); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			b.WriteString("line " + strconv.Itoa(i+1) + ":\n  got  " + gl + "\n  want " + wl + "\n")
		}
	}
	return b.String()
}

// TestRenderVariants checks the rules that depend on options, family
// and on which sets are empty, where no golden case's ipvs.dry-run does
// (masquerade-all and loadbalancer-source-ranges-unparseable hold the
// masqueradeAll rule and the fail-closed firewall).
func TestRenderVariants(t *testing.T) {
	clusterOnly := filled(v1.IPv4Protocol, []string{ipset.ClusterIP})
	lb := []string{ipset.ClusterIP, ipset.LoadBalancer, ipset.LoadBalancerFW}
	tests := []struct {
		name      string
		sets      rules.Sets
		opts      rules.Options
		want      []string // nat and filter lines that must be present
		forbidden []string // substrings that must not appear
	}{{
		name: "no local detector masquerades VIP-sourced traffic",
		sets: clusterOnly, opts: rules.Options{MasqueradeMark: mark},
		want:      []string{`-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-CLUSTER-IP src,dst -j KUBE-MARK-MASQ`},
		forbidden: []string{"--random-fully", "KUBE-LOAD-BALANCER dst,dst -j ACCEPT", "KUBE-NODE-PORT-TCP", "KUBE-LOOP-BACK"},
	}, {
		name: "ETP=Local NodePorts return before masquerading, per protocol",
		sets: filled(v1.IPv4Protocol, []string{ipset.ClusterIP, ipset.NodePortTCP, ipset.NodePortLocalTCP,
			ipset.NodePortSCTP, ipset.NodePortLocalSCTP}),
		opts: rules.Options{MasqueradeMark: mark},
		want: []string{
			`-A KUBE-NODE-PORT -p tcp -m comment --comment "Kubernetes nodeport TCP port with externalTrafficPolicy=local" -m set --match-set KUBE-NODE-PORT-LOCAL-TCP dst -j RETURN`,
			`-A KUBE-NODE-PORT -p sctp -m comment --comment "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'" -m set --match-set KUBE-NODE-PORT-LOCAL-SCTP-HASH dst,dst -j RETURN`,
			`-A KUBE-NODE-PORT -p sctp -m comment --comment "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'" -m set --match-set KUBE-NODE-PORT-SCTP-HASH dst,dst -j KUBE-MARK-MASQ`,
		},
		forbidden: []string{"KUBE-NODE-PORT-UDP", "KUBE-NODE-PORT-LOCAL-UDP"},
	}, {
		name:      "source ranges including the node: allow rule, no out-filter",
		sets:      filled(v1.IPv4Protocol, append(lb, ipset.LoadBalancerSourceIP, ipset.LoadBalancerSourceNet)),
		opts:      rules.Options{MasqueradeMark: mark},
		want:      []string{`-A KUBE-SOURCE-RANGES-FIREWALL -m comment --comment "Kubernetes service load balancer ip + port + source IP for packet filter purpose" -m set --match-set KUBE-LOAD-BALANCER-SOURCE-IP dst,dst,src -j RETURN`},
		forbidden: []string{"-A KUBE-IPVS-OUT-FILTER", "KUBE-LOAD-BALANCER-LOCAL"},
	}, {
		name: "IPv6 uses ::1 and the KUBE-6- names",
		sets: filled(v1.IPv6Protocol, append(lb, ipset.LoadBalancerSourceNet), "fd00:51::7"),
		opts: rules.Options{MasqueradeMark: mark},
		want: []string{
			"-A KUBE-SERVICES -s ::1/128 -j RETURN",
			`-A KUBE-SOURCE-RANGES-FIREWALL -m comment --comment "Kubernetes service load balancer ip + port + source cidr for packet filter purpose" -m set --match-set KUBE-6-LOAD-BALANCER-SOURCE-CID dst,dst,src -j RETURN`,
			"-A KUBE-IPVS-OUT-FILTER -s fd00:51::7 -m ipvs --vaddr fd00:51::7 --vproto tcp --vport 80 -j DROP",
			"-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-6-IPVS-IPS dst -j REJECT",
		},
		forbidden: []string{"--match-set KUBE-CLUSTER-IP", "127.0.0.0/8"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rules.Render(tc.sets, tc.opts)
			all := slices.Concat(r.NAT, r.Filter)
			for _, w := range tc.want {
				if !slices.Contains(all, w) {
					t.Errorf("missing rule %s\nin:\n%s", w, strings.Join(all, "\n"))
				}
			}
			for _, f := range tc.forbidden {
				for _, l := range all {
					if strings.Contains(l, f) {
						t.Errorf("unexpected %q in %s", f, l)
					}
				}
			}
		})
	}
}

// recordingRestorer is an netfilter.Restorer whose Save returns saved[table]
// and whose Restore records its input.
type recordingRestorer struct {
	saved    map[string]string
	restored []string
}

func (r *recordingRestorer) Restore(_ context.Context, data []byte) error {
	r.restored = append(r.restored, string(data))
	return nil
}

func (r *recordingRestorer) Save(_ context.Context, table string) ([]byte, error) {
	return []byte(r.saved[table]), nil
}

func TestApplierInsertsOnlyMissingJumps(t *testing.T) {
	present := netfilter.IPVSJumpRules()[0] // nat OUTPUT -> KUBE-SERVICES
	rec := &recordingRestorer{saved: map[string]string{
		"nat": "*nat\n:OUTPUT ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n" + present.SaveLine() + "\n" +
			// same target, other comment (e.g. someone else's): not ours
			"-A PREROUTING -m comment --comment \"other\" -j KUBE-SERVICES\nCOMMIT\n",
		"filter": "*filter\n" + strings.Join(func() []string {
			var out []string
			for _, j := range netfilter.IPVSJumpRules() {
				if j.Table == "filter" {
					out = append(out, j.SaveLine())
				}
			}
			return out
		}(), "\n") + "\nCOMMIT\n",
	}}
	a := rules.NewApplier(rec)
	if err := a.Apply(context.Background(), rules.Render(filled(v1.IPv4Protocol, []string{ipset.ClusterIP}), rules.Options{MasqueradeMark: mark})); err != nil {
		t.Fatal(err)
	}
	if len(rec.restored) != 1 {
		t.Fatalf("%d restores, want 1", len(rec.restored))
	}
	var inserts []string
	for _, l := range strings.Split(rec.restored[0], "\n") {
		if strings.HasPrefix(l, "-I ") {
			inserts = append(inserts, l)
		}
	}
	want := []string{
		`-I PREROUTING 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
		`-I POSTROUTING 1 -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING`,
	}
	if !slices.Equal(inserts, want) {
		t.Errorf("inserts = %q, want %q", inserts, want)
	}
}
