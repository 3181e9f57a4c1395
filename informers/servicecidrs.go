package informers

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/kproxy/kproxy/informers/apiclient"
)

// ServiceCIDRsOptions configure RunServiceCIDRs.
type ServiceCIDRsOptions struct {
	// Client talks to the API server.
	Client apiclient.API
	// ResyncPeriod is the informer's resync period (0: none).
	ResyncPeriod time.Duration
	// OnChange receives the cluster's service CIDRs (every ServiceCIDR
	// object's spec.cidrs, both families, sorted, without duplicates)
	// whenever they change. Calls never overlap.
	OnChange func([]netip.Prefix)
	// Logger receives V(4) events and unparseable CIDRs. The zero value discards.
	Logger klog.Logger
}

// RunServiceCIDRs watches networking.k8s.io/v1 ServiceCIDR objects until ctx
// ends, as upstream's ServiceCIDRConfig does for nftables mode (which drops
// traffic to unallocated addresses of these ranges). It is separate from
// RunCluster: ServiceCIDRs carry no service-proxy label, and an API server
// without the resource (before 1.33) must not hold up the proxy, so nothing
// waits for this informer's initial listing.
func RunServiceCIDRs(ctx context.Context, opts ServiceCIDRsOptions) error {
	if opts.Client == nil || opts.OnChange == nil {
		return errors.New("service CIDR source: Client and OnChange are required")
	}
	inf := newInformer(opts.Client, apiclient.ServiceCIDRs, nil, opts.ResyncPeriod)
	w := &serviceCIDRWatcher{store: inf.GetStore(), opts: opts}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { w.changed() },
		UpdateFunc: func(any, any) { w.changed() },
		DeleteFunc: func(any) { w.changed() },
	}); err != nil {
		return err
	}
	runInformers(ctx, inf)()
	return nil
}

// serviceCIDRWatcher recomputes the CIDR list from the informer's store on
// each event (the informer calls one handler at a time).
type serviceCIDRWatcher struct {
	store cache.Store
	opts  ServiceCIDRsOptions
	last  []netip.Prefix
	sent  bool
}

func (w *serviceCIDRWatcher) changed() {
	var scs []*networkingv1.ServiceCIDR
	for _, obj := range w.store.List() {
		if sc, ok := obj.(*networkingv1.ServiceCIDR); ok {
			scs = append(scs, sc)
		}
	}
	out := ServiceCIDRPrefixes(scs, w.opts.Logger)
	if w.sent && slices.Equal(out, w.last) {
		return
	}
	w.last, w.sent = out, true
	w.opts.OnChange(slices.Clone(out))
}

// ServiceCIDRPrefixes are the ranges of scs, as both sources report them:
// every object's spec.cidrs, both families, masked, sorted, without
// duplicates (unparseable ones are logged and skipped, see ParseServiceCIDRs).
func ServiceCIDRPrefixes(scs []*networkingv1.ServiceCIDR, logger klog.Logger) []netip.Prefix {
	var out []netip.Prefix
	for _, sc := range scs {
		out = append(out, ParseServiceCIDRs(sc, logger)...)
	}
	return sortPrefixes(out)
}

// ValidateServiceCIDR checks a ServiceCIDR as the API server checks a new
// one (networking validation of 1.33 and later): its metadata (a DNS
// subdomain name, no namespace, valid labels and annotations) and one or
// two CIDRs, each in canonical form with no bits set past the prefix
// length, at most one per IP family. The manifest source uses it, since
// nothing else has checked a file's objects.
func ValidateServiceCIDR(sc *networkingv1.ServiceCIDR) field.ErrorList {
	errs := apimachineryvalidation.ValidateObjectMeta(&sc.ObjectMeta, false,
		apimachineryvalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	path := field.NewPath("spec", "cidrs")
	cidrs := sc.Spec.CIDRs
	switch {
	case len(cidrs) == 0:
		return append(errs, field.Required(path, "at least one CIDR required"))
	case len(cidrs) > 2:
		return append(errs, field.Invalid(path, cidrs, "may only hold up to 2 values"))
	}
	for i, c := range cidrs {
		errs = append(errs, validation.IsValidCIDR(path.Index(i), c)...)
	}
	if len(cidrs) == 2 {
		a, errA := netip.ParsePrefix(cidrs[0])
		b, errB := netip.ParsePrefix(cidrs[1])
		if errA == nil && errB == nil && a.Addr().Is4() == b.Addr().Is4() {
			errs = append(errs, field.Invalid(path, cidrs,
				"may specify no more than one IP for each IP family, i.e 192.168.0.0/24 and 2001:db8::/64"))
		}
	}
	return errs
}

// ParseServiceCIDRs returns a ServiceCIDR's valid, masked spec.cidrs; an
// unparseable one is logged and skipped (the API server validates them),
// and so is one broader than minServiceCIDRBits: nftables mode drops new
// connections to every address of these ranges that is not a ClusterIP,
// and the API server accepts even 0.0.0.0/0, which would cut the node and
// its pods off from everything but Services. Leaving a range out only
// stops that drop for it; its ClusterIPs work as before.
func ParseServiceCIDRs(sc *networkingv1.ServiceCIDR, logger klog.Logger) []netip.Prefix {
	var out []netip.Prefix
	for _, c := range sc.Spec.CIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			logger.Info("Ignoring an invalid ServiceCIDR range", "serviceCIDR", klog.KObj(sc), "cidr", c)
			continue
		}
		if least := minServiceCIDRBits(p.Addr()); p.Bits() < least {
			logger.Info("Ignoring a ServiceCIDR range too broad to drop traffic to its unallocated addresses",
				"serviceCIDR", klog.KObj(sc), "cidr", c, "minPrefixLength", least)
			continue
		}
		out = append(out, p.Masked())
	}
	return out
}

// minServiceCIDRBits is the shortest prefix taken from a ServiceCIDR: a
// /8 is 16 times the largest range kube-apiserver's own
// --service-cluster-ip-range accepts (/12); an IPv6 range may be a whole
// /64 subnet, no more.
func minServiceCIDRBits(a netip.Addr) int {
	if a.Is4() {
		return 8
	}
	return 64
}

func sortPrefixes(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(ps)
}
