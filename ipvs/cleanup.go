package ipvs

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/ipvs/addresses"
	"github.com/kproxy/kproxy/ipvs/ipset"
	"github.com/kproxy/kproxy/ipvs/vs"
	"github.com/kproxy/kproxy/proxier/netfilter"
)

// DeviceRemover deletes the kube-ipvs0 dummy device (and with it every
// address bound to it); a missing device is not an error. addresses.Netlink
// and addresses.Fake are ones.
type DeviceRemover interface {
	RemoveDevice() error
}

// CleanupFamily is what Cleanup needs to know about one IP family.
type CleanupFamily struct {
	Family v1.IPFamily
	// Addresses reads kube-ipvs0's and the node's addresses of the family
	// (which virtual servers are owned); nil means none are known.
	Addresses addresses.Manager
	// Restorer is the family's iptables; nil skips its rules.
	Restorer netfilter.Restorer
}

// CleanupOptions configure Cleanup. Every seam may be nil: a kernel without
// IPVS (no Handle), without ipset (no IPSet) or without ip6tables simply has
// nothing of that kind to clean.
type CleanupOptions struct {
	Handle   vs.Handle
	Families []CleanupFamily
	Device   DeviceRemover
	IPSet    ipset.Interface
	// NodePortRange: virtual servers on node addresses with a port in it
	// are removed; the zero value means 30000-32767.
	NodePortRange PortRange
	// ExcludeCIDRs: virtual servers there are kept (unless All).
	ExcludeCIDRs []netip.Prefix
	// All deletes every virtual server, as upstream's ipvs.Flush() does.
	All bool
}

// CleanupResult counts what Cleanup removed.
type CleanupResult struct {
	VirtualServers int
	Chains         int
	Sets           int
	DeviceRemoved  bool
}

// Cleanup removes what kproxy's or upstream kube-proxy's IPVS mode left:
// virtual servers (see cleanupOwnership), the IPVS-mode chains and the
// jumps to them in nat and filter (netfilter.CleanupIPVSMode), the KUBE-*
// ipsets (after the rules that match them) and kube-ipvs0. It goes on after an error and returns them all.
func Cleanup(ctx context.Context, opts CleanupOptions) (CleanupResult, error) {
	if opts.NodePortRange == (PortRange{}) {
		opts.NodePortRange = DefaultNodePortRange()
	}
	var res CleanupResult
	var errs []error
	if opts.Handle != nil {
		owned, err := cleanupOwnership(opts)
		if err != nil {
			errs = append(errs, err)
		} else {
			res.VirtualServers, err = deleteVirtualServers(opts.Handle, owned)
			errs = append(errs, err)
		}
	}
	for _, f := range opts.Families {
		if f.Restorer == nil {
			continue
		}
		n, err := netfilter.CleanupIPVSMode(ctx, f.Restorer)
		res.Chains += n
		errs = append(errs, err)
	}
	if opts.IPSet != nil {
		n, err := destroyExistingSets(ctx, opts.IPSet, opts.Families)
		res.Sets = n
		errs = append(errs, err)
	}
	if opts.Device != nil {
		if err := opts.Device.RemoveDevice(); err != nil {
			errs = append(errs, err)
		} else {
			res.DeviceRemoved = true
		}
	}
	return res, errors.Join(errs...)
}

// cleanupOwnership returns the rule deciding which virtual servers go: with
// All every one; otherwise those on an address bound to kube-ipvs0, and
// those on a node address with a port in the NodePort range, except in
// ExcludeCIDRs — the same virtual servers a kproxy sync owns.
func cleanupOwnership(opts CleanupOptions) (func(vs.ServiceKey) bool, error) {
	if opts.All {
		return func(vs.ServiceKey) bool { return true }, nil
	}
	bound := map[netip.Addr]struct{}{}
	local := map[netip.Addr]struct{}{}
	for _, f := range opts.Families {
		if f.Addresses == nil {
			continue
		}
		b, err := f.Addresses.Bound()
		if err != nil {
			return nil, fmt.Errorf("read %s addresses: %w", addresses.DummyDevice, err)
		}
		l, err := f.Addresses.Local()
		if err != nil {
			return nil, fmt.Errorf("read node addresses: %w", err)
		}
		for _, a := range b {
			bound[a.Unmap()] = struct{}{}
		}
		for _, a := range l {
			local[a.Unmap()] = struct{}{}
		}
	}
	return func(k vs.ServiceKey) bool {
		a := k.Addr.Unmap()
		if slices.ContainsFunc(opts.ExcludeCIDRs, func(p netip.Prefix) bool { return p.Contains(a) }) {
			return false
		}
		if _, ok := bound[a]; ok {
			return true
		}
		_, ok := local[a]
		return ok && opts.NodePortRange.Contains(k.Port)
	}, nil
}

func deleteVirtualServers(h vs.Handle, owned func(vs.ServiceKey) bool) (int, error) {
	servers, err := h.ListVirtualServers()
	if err != nil {
		return 0, fmt.Errorf("cleanup: %w", err)
	}
	n := 0
	var errs []error
	for _, v := range servers {
		if !owned(v.ServiceKey) {
			continue
		}
		if err := h.DelVirtualServer(v.ServiceKey); err != nil && !vs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("cleanup: delete virtual server %s: %w", v.ServiceKey, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// destroyExistingSets destroys the families' KUBE-* sets that exist.
func destroyExistingSets(ctx context.Context, sets ipset.Interface, families []CleanupFamily) (int, error) {
	have, err := sets.List(ctx)
	if err != nil {
		return 0, fmt.Errorf("cleanup: %w", err)
	}
	b := &ipset.Batch{}
	for _, f := range families {
		for _, spec := range ipset.Specs(f.Family) {
			if _, ok := have[spec.Name]; ok {
				b.Destroy(spec.Name)
			}
		}
	}
	if err := sets.Restore(ctx, b); err != nil {
		return 0, fmt.Errorf("cleanup: destroy ipsets: %w", err)
	}
	return b.Len(), nil
}
