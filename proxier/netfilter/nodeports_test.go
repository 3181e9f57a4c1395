package netfilter

import (
	"net/netip"
	"testing"
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func TestNodePortMatchContainsIPv4Loopback(t *testing.T) {
	tests := []struct {
		match NodePortMatch
		want  bool
	}{
		{NodePortMatch{All: true}, true},
		{NodePortMatch{Prefixes: prefixes("127.0.0.0/8")}, true},
		{NodePortMatch{Prefixes: prefixes("127.0.0.5/32")}, true},
		{NodePortMatch{Prefixes: prefixes("0.0.0.0/1")}, true},
		{NodePortMatch{Prefixes: prefixes("10.0.0.0/8", "192.168.0.0/16")}, false},
	}
	for _, tt := range tests {
		if got := tt.match.ContainsIPv4Loopback(); got != tt.want {
			t.Errorf("%+v.ContainsIPv4Loopback() = %v, want %v", tt.match, got, tt.want)
		}
	}
}

func TestNodePortMatchContains(t *testing.T) {
	tests := []struct {
		match NodePortMatch
		addr  string
		want  bool
	}{
		{NodePortMatch{All: true}, "203.0.113.1", true},
		{NodePortMatch{Prefixes: prefixes("10.0.0.0/8", "fd00::/64")}, "10.1.2.3", true},
		{NodePortMatch{Prefixes: prefixes("10.0.0.0/8", "fd00::/64")}, "fd00::5", true},
		{NodePortMatch{Prefixes: prefixes("10.0.0.0/8")}, "192.168.1.10", false},
		{NodePortMatch{}, "10.1.2.3", false},
	}
	for _, tt := range tests {
		if got := tt.match.Contains(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("%+v.Contains(%s) = %v, want %v", tt.match, tt.addr, got, tt.want)
		}
	}
}

func TestNodePortAddressesString(t *testing.T) {
	n := NodePortAddresses{Primary: true, CIDRs: prefixes("10.0.0.0/8")}
	if got := n.String(); got != "primary,10.0.0.0/8" {
		t.Errorf("String() = %q", got)
	}
}
