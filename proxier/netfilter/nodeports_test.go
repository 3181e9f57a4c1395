package netfilter

import (
	"net/netip"
	"testing"
)

// match builds a NodePortMatch of CIDRs ("all" alone matches everything).
func match(cidrs ...string) NodePortMatch {
	if len(cidrs) == 1 && cidrs[0] == "all" {
		return NodePortMatch{All: true}
	}
	var m NodePortMatch
	for _, c := range cidrs {
		m.Prefixes = append(m.Prefixes, netip.MustParsePrefix(c))
	}
	return m
}

func TestNodePortMatchContainsIPv4Loopback(t *testing.T) {
	tests := []struct {
		match NodePortMatch
		want  bool
	}{
		{match("all"), true},
		{match("127.0.0.0/8"), true},
		{match("127.0.0.5/32"), true},
		{match("0.0.0.0/1"), true},
		{match("10.0.0.0/8", "192.168.0.0/16"), false},
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
		{match("all"), "203.0.113.1", true},
		{match("10.0.0.0/8", "fd00::/64"), "10.1.2.3", true},
		{match("10.0.0.0/8", "fd00::/64"), "fd00::5", true},
		{match("10.0.0.0/8"), "192.168.1.10", false},
		{match(), "10.1.2.3", false},
	}
	for _, tt := range tests {
		if got := tt.match.Contains(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("%+v.Contains(%s) = %v, want %v", tt.match, tt.addr, got, tt.want)
		}
	}
}

func TestNodePortAddressesString(t *testing.T) {
	n := NodePortAddresses{Primary: true, CIDRs: match("10.0.0.0/8").Prefixes}
	if got := n.String(); got != "primary,10.0.0.0/8" {
		t.Errorf("String() = %q", got)
	}
}
