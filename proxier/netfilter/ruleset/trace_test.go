package ruleset

import (
	"math"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
)

// kubeFixture loads rule set (a) of the behaviour reference, the extra
// services of testdata/extra.restore and kube-proxy's jump rules into a fake.
func kubeFixture(t *testing.T) map[string]*Table {
	t.Helper()
	f := NewFake(FakeOptions{})
	for _, name := range []string{"fixture_a.restore", "extra.restore", "jumps.restore"} {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		mustRestore(t, f, string(data))
	}
	return f.Tables()
}

// Fixture conventions (reference 9.10): node IP 192.168.0.2, cluster CIDR 10.0.0.0/8.
var nodeIP = netip.MustParseAddr("192.168.0.2")

type packetOpt func(*Packet)

func pkt(src, dst string, dport uint16, opts ...packetOpt) Packet {
	p := Packet{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Protocol: "tcp", SPort: 40000, DPort: dport, InIface: "eth0"}
	for _, o := range opts {
		o(&p)
	}
	return p
}

func fromLocal(p *Packet) { p.FromLocalProcess, p.InIface = true, "" }
func udp(p *Packet)       { p.Protocol = "udp" }

func dests(kv ...any) map[netip.AddrPort]float64 {
	out := map[netip.AddrPort]float64{}
	for i := 0; i < len(kv); i += 2 {
		out[netip.MustParseAddrPort(kv[i].(string))] = kv[i+1].(float64)
	}
	return out
}

type traceCase struct {
	name     string
	pkt      Packet
	recent   RecentMode
	dests    map[netip.AddrPort]float64
	masq     bool
	verdicts []string
	check    func(t *testing.T, r TraceResult)
}

// kubeTraceCases are packets against kubeFixture.
func kubeTraceCases() []traceCase {
	half := dests("10.180.0.1:80", 0.5, "10.180.0.2:80", 0.5)
	return []traceCase{
		{name: "cluster IP from off-cluster source is masqueraded and load-balanced",
			pkt: pkt("192.168.0.100", "172.30.0.41", 80), dests: half, masq: true, verdicts: []string{"ACCEPT"}},
		{name: "cluster IP from a pod is not masqueraded",
			pkt: pkt("10.0.0.5", "172.30.0.41", 80), dests: half, masq: false, verdicts: []string{"ACCEPT"}},
		{name: "hairpin: an endpoint reaching itself is masqueraded",
			pkt: pkt("10.180.0.1", "172.30.0.41", 80), dests: half, verdicts: []string{"ACCEPT"},
			check: func(t *testing.T, r TraceResult) {
				for _, p := range r.Paths {
					if want := p.DNAT.Addr() == netip.MustParseAddr("10.180.0.1"); p.Masquerade != want {
						t.Errorf("path to %v: masquerade = %v, want %v", p.DNAT, p.Masquerade, want)
					}
				}
			}},
		{name: "node port on a node IP", pkt: pkt("203.0.113.5", "192.168.0.2", 3001), dests: half, masq: true, verdicts: []string{"ACCEPT"}},
		{name: "node port on a non-local address is not a node port",
			pkt: pkt("203.0.113.5", "192.168.0.99", 3001), dests: dests(), verdicts: []string{"ACCEPT"}},
		{name: "node port from a local process to localhost",
			pkt: pkt("127.0.0.1", "127.0.0.1", 3001, fromLocal), dests: half, masq: true, verdicts: []string{"ACCEPT"}},
		{name: "cluster IP from a local process",
			pkt: pkt("192.168.0.2", "172.30.0.41", 80, fromLocal), dests: half, masq: true, verdicts: []string{"ACCEPT"}},
		{name: "cluster IP on another port", pkt: pkt("10.0.0.5", "172.30.0.41", 81), dests: dests(), verdicts: []string{"ACCEPT"}},
		{name: "cluster IP over udp", pkt: pkt("10.0.0.5", "172.30.0.41", 80, udp), dests: dests(), verdicts: []string{"ACCEPT"}},
		{name: "service without endpoints is rejected",
			pkt: pkt("10.0.0.5", "172.30.0.46", 80), dests: dests(), verdicts: []string{"REJECT"},
			check: func(t *testing.T, r TraceResult) {
				if r.Paths[0].RejectWith != "icmp-port-unreachable" {
					t.Errorf("reject with %q", r.Paths[0].RejectWith)
				}
			}},
		{name: "service without endpoints is rejected for local processes too",
			pkt: pkt("192.168.0.2", "172.30.0.46", 80, fromLocal), dests: dests(), verdicts: []string{"REJECT"}},
		{name: "external IP without local endpoints is dropped",
			pkt: pkt("203.0.113.5", "192.168.99.22", 80), dests: dests(), verdicts: []string{"DROP"}},
		{name: "load balancer source range allows",
			pkt: pkt("203.0.113.5", "5.6.7.8", 80), dests: dests("10.180.0.3:80", 0.5, "10.180.0.4:80", 0.5), masq: true, verdicts: []string{"ACCEPT"}},
		{name: "load balancer source range blocks",
			pkt: pkt("203.0.113.200", "5.6.7.8", 80), dests: dests(), verdicts: []string{"DROP"}},
		{name: "session affinity may pin either endpoint",
			pkt: pkt("203.0.113.5", "5.6.7.8", 80), recent: RecentMayMatch,
			dests: dests("10.180.0.3:80", 0.5, "10.180.0.4:80", 0.5), masq: true, verdicts: []string{"ACCEPT"},
			check: func(t *testing.T, r TraceResult) {
				var sticky []string
				for _, p := range r.Paths {
					if p.Sticky {
						sticky = append(sticky, p.DNAT.String())
					}
				}
				slices.Sort(sticky)
				if !slices.Equal(sticky, []string{"10.180.0.3:80", "10.180.0.4:80"}) {
					t.Errorf("sticky paths go to %v", sticky)
				}
			}},
	}
}

func TestTraceKubeProxyRules(t *testing.T) {
	tables := kubeFixture(t)
	for _, tt := range kubeTraceCases() {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Trace(tables, TraceOptions{NodeIPs: []netip.Addr{nodeIP}, Recent: tt.recent}, tt.pkt)
			if err != nil {
				t.Fatal(err)
			}
			got := r.Destinations()
			if len(got) != len(tt.dests) {
				t.Errorf("destinations = %v, want %v\n%s", got, tt.dests, r)
			}
			for d, p := range tt.dests {
				if math.Abs(got[d]-p) > 1e-9 {
					t.Errorf("destination %v: probability %v, want %v\n%s", d, got[d], p, r)
				}
			}
			if tt.check == nil && r.Masqueraded() != tt.masq {
				t.Errorf("masqueraded = %v, want %v\n%s", r.Masqueraded(), tt.masq, r)
			}
			if !slices.Equal(r.Verdicts(), tt.verdicts) {
				t.Errorf("verdicts = %v, want %v\n%s", r.Verdicts(), tt.verdicts, r)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

func TestTraceExplainsRules(t *testing.T) {
	r, err := Trace(kubeFixture(t), TraceOptions{NodeIPs: []netip.Addr{nodeIP}}, pkt("192.168.0.100", "172.30.0.41", 80))
	if err != nil {
		t.Fatal(err)
	}
	var chains []string
	for _, tr := range r.Paths[0].Rules {
		chains = append(chains, tr.Table+"/"+tr.Chain)
	}
	want := "nat/PREROUTING nat/KUBE-SERVICES nat/KUBE-SVC-XPGD46QRK7WJZT7O nat/KUBE-MARK-MASQ nat/KUBE-SVC-XPGD46QRK7WJZT7O " +
		"nat/KUBE-SEP-SXIVWICOYRO3J4NJ filter/FORWARD filter/FORWARD filter/KUBE-FORWARD " +
		"nat/POSTROUTING nat/KUBE-POSTROUTING nat/KUBE-POSTROUTING"
	if got := strings.Join(chains, " "); got != want {
		t.Errorf("rules on first path:\n%s\nwant\n%s\n%s", got, want, r)
	}
	if r.Paths[0].Local || r.Paths[0].Mark != 0 {
		t.Errorf("first path local=%v mark=%#x, want forwarded with the masquerade bit cleared", r.Paths[0].Local, r.Paths[0].Mark)
	}
}

func TestTraceErrors(t *testing.T) {
	f := NewFake(FakeOptions{})
	// The fake refuses a reachable loop, so hook the unreachable one up by hand.
	mustRestore(t, f, restoreInput("nat", ":L1 - [0:0]", ":L2 - [0:0]", "-A L1 -j L2", "-A L2 -j L1"))
	tables := f.Tables()
	jump, err := ParseRule([]string{"-j", "L1"}, "")
	if err != nil {
		t.Fatal(err)
	}
	out := tables["nat"].Chain("OUTPUT")
	out.Rules = append(out.Rules, jump)
	_, err = Trace(tables, TraceOptions{}, pkt("10.0.0.1", "10.0.0.2", 80, fromLocal))
	if err == nil || !strings.Contains(err.Error(), "loop") {
		t.Errorf("loop: err = %v", err)
	}
	if _, err := Trace(nil, TraceOptions{}, Packet{}); err == nil {
		t.Error("packet without addresses: no error")
	}
	r, err := Trace(nil, TraceOptions{}, pkt("10.0.0.1", "10.0.0.2", 80))
	if err != nil || len(r.Paths) != 1 || r.Paths[0].Verdict != VerdictAccept {
		t.Errorf("empty tables: %v, %v", r, err)
	}
}
