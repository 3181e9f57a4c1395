package iptables

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier/netfilter"
)

// ServiceChains are the names of the per-service chains of one service port.
// They share one hash suffix, so they are easy to correlate in dumps.
type ServiceChains struct {
	Cluster  string // KUBE-SVC-*: cluster-policy endpoints
	Local    string // KUBE-SVL-*: local-policy endpoints
	External string // KUBE-EXT-*: NodePort / LB / external IP entry
	Firewall string // KUBE-FW-*: loadBalancerSourceRanges filter
}

// ServiceChainNames names the chains of a service port from its svcPortName
// ("ns/name:port") and protocol, exactly as upstream does.
func ServiceChainNames(svcPortName string, protocol v1.Protocol) ServiceChains {
	var buf [64]byte
	suffix := hashSuffix(append(append(buf[:0], svcPortName...), lowerProtocol(protocol)...))
	return ServiceChains{
		Cluster:  netfilter.ClusterChainPrefix + suffix,
		Local:    netfilter.LocalChainPrefix + suffix,
		External: netfilter.ExternalChainPrefix + suffix,
		Firewall: netfilter.FirewallChainPrefix + suffix,
	}
}

// EndpointChainName names the KUBE-SEP chain of one endpoint ("ip:port" in
// net.JoinHostPort form) of a service port.
func EndpointChainName(svcPortName string, protocol v1.Protocol, endpoint string) string {
	var buf [96]byte
	b := append(append(append(buf[:0], svcPortName...), lowerProtocol(protocol)...), endpoint...)
	return netfilter.EndpointChainPrefix + hashSuffix(b)
}

// hashSuffix is the first 16 characters of the padded standard base32
// encoding of SHA-256 over data (upstream portProtoHash).
func hashSuffix(data []byte) string {
	sum := sha256.Sum256(data)
	var enc [56]byte // base32 of 32 bytes is 56 characters
	base32.StdEncoding.Encode(enc[:], sum[:])
	return string(enc[:16])
}

// lowerProtocol is strings.ToLower for the protocols Services use, without allocating.
func lowerProtocol(p v1.Protocol) string {
	switch p {
	case v1.ProtocolTCP:
		return "tcp"
	case v1.ProtocolUDP:
		return "udp"
	case v1.ProtocolSCTP:
		return "sctp"
	}
	return strings.ToLower(string(p))
}
