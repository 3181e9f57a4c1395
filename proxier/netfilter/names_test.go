package netfilter

import "testing"

func TestMasqueradeMark(t *testing.T) {
	tests := []struct {
		bit  int
		want string
	}{
		{0, "0x00000001"},
		{14, "0x00004000"},
		{15, "0x00008000"},
		{31, "0x80000000"},
	}
	for _, tt := range tests {
		if got := MasqueradeMark(tt.bit); got != tt.want {
			t.Errorf("MasqueradeMark(%d) = %q, want %q", tt.bit, got, tt.want)
		}
	}
}

func TestIsServiceChainName(t *testing.T) {
	for chain, want := range map[string]bool{
		"KUBE-SVC-XPGD46QRK7WJZT7O": true, "KUBE-SVL-X": true, "KUBE-EXT-X": true, "KUBE-FW-X": true, "KUBE-SEP-X": true,
		"KUBE-SERVICES": false, "KUBE-NODEPORTS": false, "KUBE-MARK-MASQ": false, "KUBE-FIREWALL": false, "CILIUM-SVC": false,
	} {
		if got := IsServiceChainName(chain); got != want {
			t.Errorf("IsServiceChainName(%q) = %v, want %v", chain, got, want)
		}
	}
}
