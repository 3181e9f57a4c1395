package iptables

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier/netfilter"
)

func TestChainNameVectors(t *testing.T) {
	tests := []struct {
		svcPortName string
		proto       v1.Protocol
		endpoint    string
		suffix      string
	}{
		{"ns1/svc1:p80", v1.ProtocolTCP, "", "XPGD46QRK7WJZT7O"},
		{"ns1/svc1:p80", v1.ProtocolTCP, "10.180.0.1:80", "SXIVWICOYRO3J4NJ"},
		{"ns1/svc1:p80", v1.ProtocolTCP, "10.180.0.2:80", "LXVODXWDISEETFEF"},
		{"ns2/svc2:p80", v1.ProtocolTCP, "", "GNZBNJ2PO5MGZ6GT"},
		{"ns4/svc4:p80", v1.ProtocolTCP, "", "4SW47YFZTEDKD3PK"},
		{"ns4/svc4:p80", v1.ProtocolTCP, "10.180.0.4:80", "UKSFD7AGPMPPLUHC"},
		{"ns4/svc4:p80", v1.ProtocolTCP, "10.180.0.5:80", "C6EBXVWJJZMIWKLZ"},
		{"ns5/svc5:p80", v1.ProtocolTCP, "", "NUKIZ6OKUXPJNT4C"},
		{"default/kubernetes:https", v1.ProtocolTCP, "", "NPX46M4PTMTKRN6Y"},
		{"kube-system/kube-dns:dns", v1.ProtocolUDP, "", "TCOU7JCQXEZGVUNU"},
		{"kube-system/kube-dns:dns-tcp", v1.ProtocolTCP, "", "ERIFXISQEP7F7OF4"},
		{"kube-system/kube-dns:metrics", v1.ProtocolTCP, "", "JD5MR3NA4I4DYORP"},
		{"ns6/svc6:p80", v1.ProtocolTCP, "", "NDY5GL2HU4YWCI7Q"},
		{"ns1/svc1", v1.ProtocolTCP, "", "AQI2S6QIMU7PVVRP"},
		{"ns1/svc1:p80", v1.ProtocolUDP, "", "OJWW7NSBVZTDHXNW"},
		{"ns1/svc1:p80", v1.ProtocolSCTP, "", "GFCIFIA5VTFSTMSM"},
		{"ns1/svc1:p80", v1.ProtocolTCP, "[fd00::1]:80", "T5UNFIPVCZXM3U7X"},
	}
	for _, tc := range tests {
		t.Run(tc.svcPortName+"/"+string(tc.proto)+"/"+tc.endpoint, func(t *testing.T) {
			if tc.endpoint != "" {
				if got, want := EndpointChainName(tc.svcPortName, tc.proto, tc.endpoint), "KUBE-SEP-"+tc.suffix; got != want {
					t.Errorf("EndpointChainName = %s, want %s", got, want)
				}
				return
			}
			got := ServiceChainNames(tc.svcPortName, tc.proto)
			want := ServiceChains{
				Cluster: "KUBE-SVC-" + tc.suffix, Local: "KUBE-SVL-" + tc.suffix,
				External: "KUBE-EXT-" + tc.suffix, Firewall: "KUBE-FW-" + tc.suffix,
			}
			if got != want {
				t.Errorf("ServiceChainNames = %+v, want %+v", got, want)
			}
			for _, c := range []string{got.Cluster, got.Local, got.External, got.Firewall} {
				if len(c) > 28 || !netfilter.IsServiceChainName(c) {
					t.Errorf("%s: too long or not recognized as a service chain", c)
				}
			}
		})
	}
}

func TestProbabilityVectors(t *testing.T) {
	var p probabilities
	for n, want := range map[int]string{
		2: "0.5000000000", 3: "0.3333333333", 4: "0.2500000000", 5: "0.2000000000", 6: "0.1666666667",
		7: "0.1428571429", 10: "0.1000000000", 100: "0.0100000000", 1000: "0.0010000000",
	} {
		if got := p.get(n); got != want {
			t.Errorf("probability(%d) = %s, want %s", n, got, want)
		}
	}
	if got := p.get(3); got != "0.3333333333" {
		t.Errorf("cached probability(3) = %s", got)
	}
	if strings.Count(p.get(1), ".") != 1 || p.get(1) != "1.0000000000" {
		t.Errorf("probability(1) = %s", p.get(1))
	}
}
