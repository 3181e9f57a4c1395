package peerbench

import (
	"context"
	"strings"
)

// countServices is the number of services with endpoints in the IPv4
// rules: in nftables mode the service chains the service-ips map sends
// traffic to, in iptables mode the KUBE-SERVICES jumps to KUBE-SVC chains
// ("kubernetes" has no endpoints and counts in neither).
func countServices(ctx context.Context, ns, mode string) (int, error) {
	if mode == ModeIPTables {
		out, err := inNetns(ctx, ns, "iptables", "-w", "5", "-t", "nat", "-S", "KUBE-SERVICES")
		if err != nil {
			return 0, err
		}
		return strings.Count(string(out), " -j KUBE-SVC-"), nil
	}
	out, err := inNetns(ctx, ns, "nft", "list", "map", "ip", "kube-proxy", "service-ips")
	if err != nil {
		return 0, err
	}
	return strings.Count(string(out), ": goto service-"), nil
}
