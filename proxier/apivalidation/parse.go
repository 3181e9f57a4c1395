package apivalidation

import (
	"errors"
	"fmt"
	"net/netip"

	netutils "k8s.io/utils/net"
)

// ParseAddr parses an IP address as upstream kube-proxy does: the standard
// syntax, or the legacy one old API servers stored (IPv4 with leading zeros,
// net.ParseIPSloppy), never with an IPv6 zone. IPv4-mapped IPv6 addresses
// are returned as IPv4, as net.ParseIP treats them.
func ParseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err == nil {
		if a.Zone() != "" {
			return netip.Addr{}, fmt.Errorf("IP address %q has a zone", s)
		}
		return a.Unmap(), nil
	}
	ip := netutils.ParseIPSloppy(s)
	if ip == nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	a, _ = netip.AddrFromSlice(ip)
	return a.Unmap(), nil
}

// ParsePrefix parses a CIDR as upstream kube-proxy does (ParseCIDRSloppy):
// legacy leading zeros allowed, no zone, host bits allowed and cleared. An
// IPv4-mapped prefix is returned as IPv4.
func ParsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		_, ipnet, sloppyErr := netutils.ParseCIDRSloppy(s)
		if sloppyErr != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR", s)
		}
		a, _ := netip.AddrFromSlice(ipnet.IP)
		ones, _ := ipnet.Mask.Size()
		p = netip.PrefixFrom(a, ones)
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, errors.New("IPv4-mapped prefix shorter than /96")
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// specialIPReason says why an endpoint or external IP is refused, as the
// API server's ValidateEndpointIP does, or "" when it is allowed.
func specialIPReason(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case a.IsUnspecified():
		return fmt.Sprintf("may not be unspecified (%v)", a)
	case a.IsLoopback():
		return "may not be in the loopback range (127.0.0.0/8, ::1/128)"
	case a.IsLinkLocalUnicast():
		return "may not be in the link-local range (169.254.0.0/16, fe80::/10)"
	case a.IsLinkLocalMulticast():
		return "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"
	}
	return ""
}
