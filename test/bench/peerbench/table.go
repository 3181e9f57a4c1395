package peerbench

import (
	"context"
	"strings"

	"github.com/kproxy/kproxy/nftables/nftnl"
)

// countServices is the number of services with endpoints in the IPv4
// rules: in nftables mode the service chains the service-ips map sends
// traffic to, in iptables mode the KUBE-SERVICES jumps to KUBE-SVC chains
// ("kubernetes" has no endpoints and counts in neither).
//
// The map is read with one netlink element dump, not nft list map: nft
// loads the whole ruleset first, about 0.45 s of CPU at 10k services, and
// polled every 100 ms it took most of a core from the proxy being timed
// (in one run of the nftables timing test, its first full sync went from
// 3.9 to 4.5 s).
func countServices(ctx context.Context, ns, mode string) (int, error) {
	if mode == ModeIPTables {
		out, err := inNetns(ctx, ns, "iptables", "-w", "5", "-t", "nat", "-S", "KUBE-SERVICES")
		if err != nil {
			return 0, err
		}
		return strings.Count(string(out), " -j KUBE-SVC-"), nil
	}
	c, err := nftnl.Open(nftnl.Options{NetNS: "/run/netns/" + ns})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	chains, err := c.VerdictChains(ctx, nftnl.IPv4, "kube-proxy", "service-ips")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ch := range chains {
		if strings.HasPrefix(ch, "service-") {
			n++
		}
	}
	return n, nil
}
