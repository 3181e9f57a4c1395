package netfilter

import "testing"

func TestLocalDetectorNFT(t *testing.T) {
	tests := []struct {
		name         string
		d            LocalDetector
		local, other string
		ok           bool
	}{
		{"cidr4", LocalDetector{IfLocal: []string{"-s", "10.0.0.0/8"}, IfNotLocal: []string{"!", "-s", "10.0.0.0/8"}},
			"ip saddr 10.0.0.0/8", "ip saddr != 10.0.0.0/8", true},
		{"cidr6", LocalDetector{IfLocal: []string{"-s", "fd00:10::/64"}, IfNotLocal: []string{"!", "-s", "fd00:10::/64"}},
			"ip6 saddr fd00:10::/64", "ip6 saddr != fd00:10::/64", true},
		{"bridge", LocalDetector{IfLocal: []string{"-i", "cbr0"}, IfNotLocal: []string{"!", "-i", "cbr0"}},
			"iifname cbr0", "iifname != cbr0", true},
		{"prefix", LocalDetector{IfLocal: []string{"-i", "veth+"}, IfNotLocal: []string{"!", "-i", "veth+"}},
			"iifname veth*", "iifname != veth*", true},
		{"none", LocalDetector{}, "", "", false},
		{"bad cidr", LocalDetector{IfLocal: []string{"-s", "x"}, IfNotLocal: []string{"!", "-s", "x"}}, "", "", false},
		{"quote", LocalDetector{IfLocal: []string{"-i", "a\"b"}, IfNotLocal: []string{"!", "-i", "a\"b"}}, "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, o, ok := tt.d.NFT()
			if l != tt.local || o != tt.other || ok != tt.ok {
				t.Errorf("NFT() = %q, %q, %v; want %q, %q, %v", l, o, ok, tt.local, tt.other, tt.ok)
			}
		})
	}
}
