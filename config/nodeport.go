package config

import (
	"fmt"
	"net/netip"

	"github.com/kproxy/kproxy/proxier/netfilter"
)

// ParseNodePortAddresses parses nodePortAddresses entries into the typed
// value the backends match node addresses with. Unset (nil/empty) means
// all. Errors name the offending entry; Validate reports them with field
// paths first, so Resolve never sees one.
func ParseNodePortAddresses(entries []string) (netfilter.NodePortAddresses, error) {
	var n netfilter.NodePortAddresses
	if len(entries) == 0 {
		n.All = true
		return n, nil
	}
	for _, e := range entries {
		switch e {
		case NodePortAddressesAll:
			n.All = true
		case NodePortAddressesPrimary:
			n.Primary = true
		case NodePortAddressesLocalhost:
			n.Localhost = true
		default:
			p, err := netip.ParsePrefix(e)
			if err != nil {
				return netfilter.NodePortAddresses{}, fmt.Errorf("nodePortAddresses entry %q: not a CIDR or one of %q, %q, %q",
					e, NodePortAddressesPrimary, NodePortAddressesLocalhost, NodePortAddressesAll)
			}
			n.CIDRs = append(n.CIDRs, p.Masked())
		}
	}
	return n, nil
}
