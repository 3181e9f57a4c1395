package ipset

import v1 "k8s.io/api/core/v1"

// Upstream's set names (IPv4; Name gives the IPv6 ones).
const (
	LoopBack              = "KUBE-LOOP-BACK"
	ClusterIP             = "KUBE-CLUSTER-IP"
	ExternalIP            = "KUBE-EXTERNAL-IP"
	ExternalIPLocal       = "KUBE-EXTERNAL-IP-LOCAL"
	LoadBalancer          = "KUBE-LOAD-BALANCER"
	LoadBalancerFW        = "KUBE-LOAD-BALANCER-FW"
	LoadBalancerLocal     = "KUBE-LOAD-BALANCER-LOCAL"
	LoadBalancerSourceIP  = "KUBE-LOAD-BALANCER-SOURCE-IP"
	LoadBalancerSourceNet = "KUBE-LOAD-BALANCER-SOURCE-CIDR"
	NodePortTCP           = "KUBE-NODE-PORT-TCP"
	NodePortLocalTCP      = "KUBE-NODE-PORT-LOCAL-TCP"
	NodePortUDP           = "KUBE-NODE-PORT-UDP"
	NodePortLocalUDP      = "KUBE-NODE-PORT-LOCAL-UDP"
	NodePortSCTP          = "KUBE-NODE-PORT-SCTP-HASH"
	NodePortLocalSCTP     = "KUBE-NODE-PORT-LOCAL-SCTP-HASH"
	HealthCheckNodePort   = "KUBE-HEALTH-CHECK-NODE-PORT"
	IPVSIPs               = "KUBE-IPVS-IPS"
)

// Specs are upstream's ipsetInfo for a family, in upstream's order, with
// upstream's comments (used in the iptables rules matching the sets).
func Specs(family v1.IPFamily) []Spec {
	if family == "" {
		family = v1.IPv4Protocol
	}
	base := []Spec{
		{LoopBack, HashIPPortIP, "", "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose"},
		{ClusterIP, HashIPPort, "", "Kubernetes service cluster ip + port for masquerade purpose"},
		{ExternalIP, HashIPPort, "", "Kubernetes service external ip + port for masquerade and filter purpose"},
		{ExternalIPLocal, HashIPPort, "", "Kubernetes service external ip + port with externalTrafficPolicy=local"},
		{LoadBalancer, HashIPPort, "", "Kubernetes service lb portal"},
		{LoadBalancerFW, HashIPPort, "", "Kubernetes service load balancer ip + port for load balancer with sourceRange"},
		{LoadBalancerLocal, HashIPPort, "", "Kubernetes service load balancer ip + port with externalTrafficPolicy=local"},
		{LoadBalancerSourceIP, HashIPPortIP, "", "Kubernetes service load balancer ip + port + source IP for packet filter purpose"},
		{LoadBalancerSourceNet, HashIPPortNet, "", "Kubernetes service load balancer ip + port + source cidr for packet filter purpose"},
		{NodePortTCP, BitmapPort, "", "Kubernetes nodeport TCP port for masquerade purpose"},
		{NodePortLocalTCP, BitmapPort, "", "Kubernetes nodeport TCP port with externalTrafficPolicy=local"},
		{NodePortUDP, BitmapPort, "", "Kubernetes nodeport UDP port for masquerade purpose"},
		{NodePortLocalUDP, BitmapPort, "", "Kubernetes nodeport UDP port with externalTrafficPolicy=local"},
		{NodePortSCTP, HashIPPort, "", "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'"},
		{NodePortLocalSCTP, HashIPPort, "", "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'"},
		{HealthCheckNodePort, BitmapPort, "", "Kubernetes health check node port"},
		{IPVSIPs, HashIP, "", "Addresses on the ipvs interface"},
	}
	for i := range base {
		base[i].Family = family
		base[i].Name = Name(base[i].Name, family)
	}
	return base
}

// Member is one entry of one set, by upstream's (IPv4) set name.
type Member struct{ Set, Entry string }
