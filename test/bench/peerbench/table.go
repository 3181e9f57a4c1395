package peerbench

import (
	"context"
	"strings"
)

// countServices is the number of service chains the IPv4 service-ips map
// sends traffic to (one per benchmark service; "kubernetes" has no
// endpoints and sits in no-endpoint-services instead).
func countServices(ctx context.Context, ns string) (int, error) {
	out, err := inNetns(ctx, ns, "nft", "list", "map", "ip", "kube-proxy", "service-ips")
	if err != nil {
		return 0, err
	}
	return strings.Count(string(out), ": goto service-"), nil
}

// chainHas reports whether the service's chain mentions addr.
func chainHas(ctx context.Context, ns, chain, addr string) (bool, error) {
	out, err := inNetns(ctx, ns, "nft", "list", "chain", "ip", "kube-proxy", chain)
	if err != nil {
		return false, err
	}
	return strings.Contains(string(out), addr+" ") || strings.Contains(string(out), addr+":"), nil
}
