package config

import (
	"net/netip"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func TestNodePortAddressesForFamily(t *testing.T) {
	tests := []struct {
		name     string
		entries  []string
		family   v1.IPFamily
		nodeIPs  []netip.Addr
		wantAll  bool
		wantPfxs []netip.Prefix
	}{
		{"unset means all", nil, v1.IPv4Protocol, nil, true, nil},
		{"all keyword", []string{"all"}, v1.IPv6Protocol, nil, true, nil},
		{"all wins over CIDRs", []string{"10.0.0.0/8", "all"}, v1.IPv4Protocol, nil, true, nil},
		{"zero CIDR means all", []string{"0.0.0.0/0"}, v1.IPv4Protocol, nil, true, nil},
		{"zero CIDR of other family does not", []string{"::/0", "10.0.0.0/8"}, v1.IPv4Protocol, nil, false, prefixes("10.0.0.0/8")},
		{"primary IPv4 expands to /32", []string{"primary"}, v1.IPv4Protocol, addrs("192.168.1.10"), false, prefixes("192.168.1.10/32")},
		{"primary IPv6 expands to /128", []string{"primary"}, v1.IPv6Protocol, addrs("fd00::10"), false, prefixes("fd00::10/128")},
		{"primary without node IP falls back to all", []string{"primary"}, v1.IPv4Protocol, nil, true, nil},
		{"CIDRs filtered by family", []string{"10.0.0.0/8", "fd00::/64"}, v1.IPv6Protocol, nil, false, prefixes("fd00::/64")},
		{"family without entries matches all (upstream)", []string{"10.0.0.0/8"}, v1.IPv6Protocol, nil, true, nil},
		{"CIDR is masked", []string{"10.1.2.3/8"}, v1.IPv4Protocol, nil, false, prefixes("10.0.0.0/8")},
		{"localhost IPv4", []string{"localhost"}, v1.IPv4Protocol, nil, false, prefixes("127.0.0.0/8")},
		{"localhost IPv6", []string{"localhost"}, v1.IPv6Protocol, nil, false, prefixes("::1/128")},
		{"mixed keywords and CIDRs, deduplicated", []string{"10.0.0.0/8", "primary", "localhost", "10.0.0.0/8"}, v1.IPv4Protocol,
			addrs("10.1.1.1"), false, prefixes("10.0.0.0/8", "127.0.0.0/8", "10.1.1.1/32")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := ParseNodePortAddresses(tt.entries)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			got := n.ForFamily(tt.family, tt.nodeIPs)
			if got.All != tt.wantAll || !slices.Equal(got.Prefixes, tt.wantPfxs) {
				t.Errorf("ForFamily = %+v, want all=%v prefixes=%v", got, tt.wantAll, tt.wantPfxs)
			}
		})
	}
}

func TestParseNodePortAddressesRejects(t *testing.T) {
	for _, bad := range []string{"10.0.0.1", "PRIMARY", "", "10.0.0.0/33"} {
		if _, err := ParseNodePortAddresses([]string{bad}); err == nil {
			t.Errorf("ParseNodePortAddresses(%q) succeeded, want error", bad)
		}
	}
}
