package apivalidation

import (
	"net/netip"
	"testing"
)

func TestParseAddr(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" means an error
	}{
		{"10.0.0.1", "10.0.0.1"},
		{"010.000.000.001", "10.0.0.1"}, // legacy: decimal, as net.ParseIP before Go 1.17
		{"::ffff:10.0.0.1", "10.0.0.1"},
		{"fd00::1", "fd00::1"},
		{"fe80::1%eth0", ""},
		{"fe80::1%1", ""},
		{" 10.0.0.1", ""},
		{"10.0.0.1 ", ""},
		{"10.0.0.256", ""},
		{"", ""},
		{"10.0.0.1\n", ""},
		{"10.0.0.1/32", ""},
	}
	for _, tt := range tests {
		a, err := ParseAddr(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ParseAddr(%q) = %v, want an error", tt.in, a)
			}
			continue
		}
		if err != nil || a != netip.MustParseAddr(tt.want) {
			t.Errorf("ParseAddr(%q) = %v, %v, want %s", tt.in, a, err, tt.want)
		}
	}
}

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" means an error
	}{
		{"10.0.0.0/8", "10.0.0.0/8"},
		{"10.1.2.3/8", "10.0.0.0/8"},
		{"010.001.000.000/16", "10.1.0.0/16"},
		{"fd00::1/64", "fd00::/64"},
		{"::ffff:10.1.2.3/120", "10.1.2.0/24"},
		{"fe80::/64%eth0", ""},
		{"fe80::%eth0/64", ""},
		{"10.0.0.0/33", ""},
		{"10.0.0.0", ""},
		{"", ""},
		{"0.0.0.0/0", "0.0.0.0/0"},
	}
	for _, tt := range tests {
		p, err := ParsePrefix(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ParsePrefix(%q) = %v, want an error", tt.in, p)
			}
			continue
		}
		if err != nil || p != netip.MustParsePrefix(tt.want) {
			t.Errorf("ParsePrefix(%q) = %v, %v, want %s", tt.in, p, err, tt.want)
		}
	}
}
