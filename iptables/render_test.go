package iptables

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"

	"github.com/kproxy/kproxy/proxier/netfilter"
	pt "github.com/kproxy/kproxy/proxier/proxiertest"
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
	svc1 := func(opts ...pt.ServiceOption) *v1.Service {
		return pt.Service("ns1", "svc1", append([]pt.ServiceOption{pt.ClusterIP("172.30.0.41")}, opts...)...)
	}
	twoEndpoints := []discovery.Endpoint{pt.Endpoint("10.180.0.1"), pt.Endpoint("10.180.0.2", local())}
	tests := []struct {
		name   string
		svc    *v1.Service
		eps    []discovery.Endpoint
		opts   func(*RenderOptions)
		want   []string // exact lines, in this order
		absent []string // substrings that must not occur
	}{{
		name: "no endpoints rejects every entry point and writes no nat chain",
		svc:  svc1(pt.NodePort(3001), pt.ExternalIPs("192.168.99.1"), pt.LoadBalancer("1.2.3.4")),
		want: []string{
			`-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j REJECT`,
			`-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp -d 192.168.99.1 --dport 80 -j REJECT`,
			`-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j REJECT`,
			`-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns1/svc1:p80 has no endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j REJECT`,
		},
		absent: []string{svc1SVC, svc1EXT, "KUBE-SEP-", "-A KUBE-NODEPORTS -m comment --comment \"ns1"},
	}, {
		name:   "no local detector writes no off-cluster masquerade and no pod short-circuit",
		svc:    svc1(pt.NodePort(3001), pt.ExternalLocal()),
		eps:    twoEndpoints,
		opts:   func(o *RenderOptions) { o.LocalDetector = netfilter.LocalDetector{} },
		absent: []string{"cluster IP\" -m tcp -p tcp -d 172.30.0.41 --dport 80 !", "pod traffic for"},
	}, {
		name: "restricted nodePortAddresses match each node IP and skip loopback when not allowed",
		svc:  svc1(pt.NodePort(3001)),
		eps:  twoEndpoints,
		opts: func(o *RenderOptions) {
			o.NodePortAddresses = NodePortAddresses{Restricted: true, IPs: addrs("192.168.0.2", "127.0.0.1", "10.1.1.1")}
		},
		want: []string{
			`-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -d 192.168.0.2 -j KUBE-NODEPORTS`,
			`-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -d 10.1.1.1 -j KUBE-NODEPORTS`,
		},
		absent: []string{"-d 127.0.0.1", "--dst-type LOCAL -j KUBE-NODEPORTS", ":KUBE-FIREWALL"},
	}, {
		name: "localhost NodePorts with a loopback node IP add the localnet guard",
		svc:  svc1(pt.NodePort(3001)),
		eps:  twoEndpoints,
		opts: func(o *RenderOptions) {
			o.LocalhostNodePorts = true
			o.NodePortAddresses = NodePortAddresses{Restricted: true, IPs: addrs("127.0.0.1")}
		},
		want: []string{
			`:KUBE-FIREWALL - [0:0]`,
			`-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -d 127.0.0.1 -j KUBE-NODEPORTS`,
		},
	}, {
		name: "random-fully and tcp_be_liberal",
		svc:  svc1(),
		eps:  twoEndpoints,
		opts: func(o *RenderOptions) { o.RandomFully, o.ConntrackTCPBeLiberal = true, true },
		want: []string{
			`-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully`,
		},
		absent: []string{"--ctstate INVALID"},
	}, {
		name: "large clusters omit endpoint comments",
		svc:  svc1(),
		eps:  twoEndpoints,
		opts: func(o *RenderOptions) { o.LargeClusterEndpointsThreshold = 1 },
		want: []string{
			`-A ` + svc1SEP1 + ` -s 10.180.0.1 -j KUBE-MARK-MASQ`,
			`-A ` + svc1SEP1 + ` -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80`,
			`-A ` + svc1SVC + ` -m statistic --mode random --probability 0.5000000000 -j ` + svc1SEP1,
			`-A ` + svc1SVC + ` -j ` + svc1SEP2,
		},
		absent: []string{"->", "--comment \"ns1/svc1:p80\" -"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions()
			if tc.opts != nil {
				tc.opts(&opts)
			}
			snap := newWorld(t).ApplyService(tc.svc, tc.eps...).Snapshot()
			out := string(Render(snap, opts).Bytes())
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
	w := multiServiceWorld(t)
	full := Render(w.Snapshot(), testOptions())
	// svc4's second endpoint moves off this node: a change of svc4 only
	// (its rules stay the same, its traffic policy being Cluster).
	snap := w.ApplyService(svc4(), pt.Endpoint("10.180.0.4"), pt.Endpoint("10.180.0.5")).Snapshot()
	if _, ok := snap.Changed[spn("ns4", "svc4")]; snap.Full || len(snap.Changed) != 1 || !ok {
		t.Fatalf("snapshot full %v, changed %v; want partial, svc4 changed", snap.Full, snap.Changed)
	}
	partial := Render(snap, testOptions())
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
	out := Render(newWorld(t).ApplyService(pt.Service("ns1", "svc1", pt.ClusterIP("172.30.0.41"), pt.NodePort(3001)),
		pt.Endpoint("10.180.0.1"), pt.Endpoint("10.180.0.2")).Snapshot(), testOptions())
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
	a := Render(multiServiceWorld(t).Snapshot(), testOptions()).Bytes()
	for range 5 {
		if b := Render(multiServiceWorld(t).Snapshot(), testOptions()).Bytes(); string(a) != string(b) {
			t.Fatalf("two renders of the same snapshot differ")
		}
	}
}

// TestRenderingUsedAfterTheNextRenderPanics: a Rendering shares its
// Renderer's buffers and chain map, which the next Render rewrites; using
// it after that must fail loudly rather than read the newer rules.
func TestRenderingUsedAfterTheNextRenderPanics(t *testing.T) {
	w := multiServiceWorld(t)
	r := NewRenderer(testOptions())
	old := r.Render(w.Snapshot())
	cur := r.Render(w.Full())
	uses := map[string]func(){
		"Bytes":         func() { old.Bytes() },
		"RuleCounts":    func() { old.RuleCounts() },
		"ServiceChains": func() { old.ServiceChains() },
		"diff":          func() { diff(&kernelState{tables: map[string]*kernelTable{}}, old, testDiffOptions()) },
	}
	for name, use := range uses {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("a Rendering was used after the next Render without a panic")
				}
			}()
			use()
		})
	}
	if len(cur.Bytes()) == 0 || len(NewRenderer(testOptions()).Render(w.Full()).ServiceChains()) == 0 {
		t.Error("the current renderings are empty")
	}
}
