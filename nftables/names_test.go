package nftables

import (
	"net/netip"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/proxiertest"
)

// Reference 10.1's test vectors (upstream golden data and computed ones).
func TestChainNames(t *testing.T) {
	ep := func(ip string, port int32) *proxier.Endpoint {
		return &proxier.Endpoint{IP: netip.MustParseAddr(ip), Port: port}
	}
	svc1 := proxiertest.Name("ns1", "svc1", "p80")
	tests := []struct{ got, want string }{
		{namesOf(svc1).cluster, "service-ULMVA6XW-ns1/svc1/tcp/p80"},
		{endpointChainName(svc1, ep("10.180.0.1", 80)), "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"},
		{namesOf(proxiertest.Name("ns4", "svc4", "p80")).external, "external-LAUZTJTB-ns4/svc4/tcp/p80"},
		{endpointChainName(proxiertest.Name("ns4", "svc4", "p80"), ep("10.180.0.4", 80)), "endpoint-UNZV3OEC-ns4/svc4/tcp/p80__10.180.0.4/80"},
		{endpointChainName(proxiertest.Name("ns4", "svc4", "p80"), ep("10.180.0.5", 80)), "endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80"},
		{endpointChainName(svc1, ep("fd00::1", 80)), "endpoint-MDGHXLRU-ns1/svc1/tcp/p80__fd00..1/80"},
		{affinitySetName(svc1, ep("fd00::1", 80)), "affinity-MDGHXLRU-ns1/svc1/tcp/p80__fd00..1/80"},
		{namesOf(proxiertest.Name("default", "kubernetes", "https")).cluster, "service-2QRHZV4L-default/kubernetes/tcp/https"},
		{namesOf(proxiertest.Name("kube-system", "kube-dns", "dns", v1.ProtocolUDP)).local, "local-FY5PMXPG-kube-system/kube-dns/udp/dns"},
		{namesOf(proxiertest.Name("ns5", "svc5", "p80")).firewall, "firewall-HVFWP5L3-ns5/svc5/tcp/p80"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("name = %q, want %q", tt.got, tt.want)
		}
	}
}

func TestHashAndTruncateLimitsLength(t *testing.T) {
	long := strings.Repeat("a", 63) + "/" + strings.Repeat("b", 63) + "/tcp/" + strings.Repeat("c", 63) +
		"__ffff.ffff.ffff.ffff.ffff.ffff.ffff.ffff/65535"
	got := hashAndTruncate(long)
	if len(got) != nameBaseLengthMax || !strings.HasSuffix(got, "...") {
		t.Errorf("len %d, suffix %q; want %d ending in ...", len(got), got[len(got)-3:], nameBaseLengthMax)
	}
	if other := hashAndTruncate(long[:len(long)-1] + "4"); other[:8] == got[:8] {
		t.Errorf("names differing after the cut share the hash %q", got[:8])
	}
	if short := hashAndTruncate("ns/s/tcp/p"); len(short) != 9+len("ns/s/tcp/p") {
		t.Errorf("short name changed length: %q", short)
	}
}

func TestServiceChainNameDetection(t *testing.T) {
	for name, want := range map[string]bool{"service-ULMVA6XW-ns1/svc1/tcp/p80": true, "services": false,
		"reject-chain": false, "filter-input": false, "endpoint-X-a/b/tcp/__1.2.3.4/80": true} {
		if IsServiceChainName(name) != want {
			t.Errorf("IsServiceChainName(%q) = %v", name, !want)
		}
	}
}
