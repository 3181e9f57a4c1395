package main

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/informers"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/apivalidation"
)

// What a golden case's manifests say besides the dry run: the node's
// interface addresses and the objects validation rejects.

// goldenInterfaces are the node's interface addresses for the dry run: the
// case's "interfaces" file (one address a line), else the Node's addresses
// and loopback, as on a node whose interfaces carry its node IPs.
func goldenInterfaces(t *testing.T, c archive) func(v1.IPFamily) []netip.Addr {
	addrs := goldenLocalAddrs(t, c)
	return func(fam v1.IPFamily) []netip.Addr {
		var out []netip.Addr
		for _, a := range addrs {
			if proxier.FamilyOf(a) == fam {
				out = append(out, a)
			}
		}
		return out
	}
}

func goldenLocalAddrs(t *testing.T, c archive) []netip.Addr {
	t.Helper()
	if data, ok := c.file("interfaces"); ok {
		var out []netip.Addr
		for _, f := range strings.Fields(string(data)) {
			a, err := netip.ParseAddr(f)
			if err != nil {
				t.Fatalf("interfaces: %v", err)
			}
			out = append(out, a)
		}
		return out
	}
	var out []netip.Addr
	for _, n := range goldenObjects(t, c).Nodes {
		for _, fam := range []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol} {
			out = append(out, proxier.NodeAddresses(n, fam)...)
		}
	}
	return append(out, netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback())
}

// rejectedObjects names each Service and EndpointSlice the proxy would see
// that fails validation (which the dry run skips), and each ServiceCIDR the
// manifest source leaves out, with the field errors.
func rejectedObjects(objs *informers.Objects) []byte {
	var lines []string
	sel := objs.Select("")
	for _, r := range sel.Rejected {
		lines = append(lines, fmt.Sprintf("%s %s: %s\n", r.Kind, r.Name, r.Reason))
	}
	for _, svc := range sel.Services {
		if errs := apivalidation.ValidateService(svc); len(errs) > 0 {
			lines = append(lines, fmt.Sprintf("Service %s/%s: %v\n", svc.Namespace, svc.Name, errs.ToAggregate()))
		}
	}
	for _, slice := range sel.EndpointSlices {
		if errs := apivalidation.ValidateEndpointSlice(slice); len(errs) > 0 {
			lines = append(lines, fmt.Sprintf("EndpointSlice %s/%s: %v\n", slice.Namespace, slice.Name, errs.ToAggregate()))
		}
	}
	slices.Sort(lines)
	return []byte(strings.Join(lines, ""))
}
