package netfilter

import (
	"fmt"
	"strings"
)

// Chain-name prefixes of iptables mode's per-service chains, as upstream
// kube-proxy names them (the hash suffix is the iptables backend's).
const (
	ClusterChainPrefix  = "KUBE-SVC-"
	LocalChainPrefix    = "KUBE-SVL-"
	ExternalChainPrefix = "KUBE-EXT-"
	FirewallChainPrefix = "KUBE-FW-"
	EndpointChainPrefix = "KUBE-SEP-"
)

// Top-level chains iptables mode and IPVS mode own or share.
const (
	ServicesChain      = "KUBE-SERVICES"
	PostroutingChain   = "KUBE-POSTROUTING"
	MarkMasqChain      = "KUBE-MARK-MASQ"
	ForwardChain       = "KUBE-FORWARD"
	ProxyFirewallChain = "KUBE-PROXY-FIREWALL"
	// CanaryChain is the empty chain whose disappearance tells the tamper
	// monitor that someone flushed the tables (both modes).
	CanaryChain = "KUBE-PROXY-CANARY"
)

// Top-level chains of iptables mode only.
const (
	ExternalServicesChain = "KUBE-EXTERNAL-SERVICES"
	NodePortsChain        = "KUBE-NODEPORTS"
	// FirewallChain is kubelet's chain; kube-proxy writes an identical copy
	// and never deletes it.
	FirewallChain = "KUBE-FIREWALL"
)

// Chains of IPVS mode only.
const (
	IPVSNodePortChain         = "KUBE-NODE-PORT"
	LoadBalancerChain         = "KUBE-LOAD-BALANCER"
	SourceRangesFirewallChain = "KUBE-SOURCE-RANGES-FIREWALL"
	IPVSFilterChain           = "KUBE-IPVS-FILTER"
	IPVSOutFilterChain        = "KUBE-IPVS-OUT-FILTER"
)

// IPVSChains are upstream's iptablesChains of IPVS mode: the chains it
// declares (and so flushes) on every sync, per table, in upstream's order.
func IPVSChains() map[string][]string {
	return map[string][]string{
		"nat":    {ServicesChain, PostroutingChain, IPVSNodePortChain, LoadBalancerChain, MarkMasqChain},
		"filter": {ForwardChain, IPVSNodePortChain, ProxyFirewallChain, SourceRangesFirewallChain, IPVSFilterChain, IPVSOutFilterChain},
	}
}

// IsServiceChainName reports whether a chain is one of the per-service chains
// iptables mode creates and garbage-collects (SVC, SVL, EXT, FW, SEP).
func IsServiceChainName(chain string) bool {
	for _, p := range [...]string{ClusterChainPrefix, LocalChainPrefix, ExternalChainPrefix, FirewallChainPrefix, EndpointChainPrefix} {
		if strings.HasPrefix(chain, p) {
			return true
		}
	}
	return false
}

// MasqueradeMark renders 1<<bit as upstream does: "0x" and eight lowercase
// hex digits (bit 14 -> "0x00004000"), the form every mode writes.
func MasqueradeMark(bit int) string {
	return fmt.Sprintf("0x%08x", uint32(1)<<uint(bit))
}
