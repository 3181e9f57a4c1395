package ipvs

import "errors"

// What IPVS mode reports, and why here. Upstream's IPVS mode reports, of
// the iptables metrics, only kubeproxy_sync_proxy_rules_iptables_restore_failures_total,
// and counts in it the iptables-restores that failed. kproxy keeps that
// meaning: the counter moves only when an iptables-restore fails, and
// kubeproxy_sync_proxy_rules_iptables_total (from SyncResult.Rules) counts
// the real nat and filter rules IPVS mode wrote. What upstream has no
// metric for goes to kproxy_-prefixed ones: every failed sync by the seam
// that failed (kproxy_ipvs_sync_failures_total{seam}), and the virtual
// servers and kube-ipvs0 addresses programmed (kproxy_ipvs_virtual_servers,
// kproxy_ipvs_bound_addresses). Only the Proxier knows which seam failed,
// so it reports these itself (Options.Metrics) instead of the generic sync
// observer, which cannot tell an ipset failure from an iptables one.

// Seam names the kernel interface a failed sync step talked to; it is the
// seam label of kproxy_ipvs_sync_failures_total.
type Seam string

// The seams of an IPVS-mode sync.
const (
	// SeamIPVS is the IPVS table over generic netlink (vs.Handle).
	SeamIPVS Seam = "ipvs"
	// SeamAddresses is kube-ipvs0 and the node's addresses over route
	// netlink (addresses.Manager).
	SeamAddresses Seam = "addresses"
	// SeamIPSet is the ipset command (ipset.Interface).
	SeamIPSet Seam = "ipset"
	// SeamIPTablesSave and SeamIPTablesRestore are the iptables commands
	// of the companion rules (rules.Applier Read and Write).
	SeamIPTablesSave    Seam = "iptables-save"
	SeamIPTablesRestore Seam = "iptables-restore"
)

// SeamError is a sync failure at one seam. Its message is the wrapped
// error's: the seam is for callers that count (errors.As).
type SeamError struct {
	Seam Seam
	Err  error
}

func (e *SeamError) Error() string { return e.Err.Error() }

func (e *SeamError) Unwrap() error { return e.Err }

// atSeam tags err (nil stays nil) with the seam it came from.
func atSeam(s Seam, err error) error {
	if err == nil {
		return nil
	}
	return &SeamError{Seam: s, Err: err}
}

// failed counts a failed sync by its seam and returns err. A sync stopped
// by its context between steps names no seam and is not counted.
func (p *Proxier) failed(err error) error {
	m := p.opts.Metrics
	var se *SeamError
	if m == nil || !errors.As(err, &se) {
		return err
	}
	fam := string(p.family)
	m.IPVSSyncFailuresTotal.WithLabelValues(fam, string(se.Seam)).Inc()
	if se.Seam == SeamIPTablesRestore {
		m.IPTablesRestoreFailuresTotal.WithLabelValues(fam).Inc()
	}
	return err
}

// report sets the gauges of what a successful sync left programmed.
func (p *Proxier) report() {
	m := p.opts.Metrics
	if m == nil {
		return
	}
	c, fam := p.Counts(), string(p.family)
	m.IPVSVirtualServers.WithLabelValues(fam).Set(float64(c.VirtualServers))
	m.IPVSBoundAddresses.WithLabelValues(fam).Set(float64(c.BoundAddresses))
}
