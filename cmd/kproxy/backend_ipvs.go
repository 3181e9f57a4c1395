package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/ipvs"
	"github.com/kproxy/kproxy/ipvs/addresses"
	"github.com/kproxy/kproxy/ipvs/rules"
	"github.com/kproxy/kproxy/ipvs/startup"
	"github.com/kproxy/kproxy/ipvs/vs"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/xtables"
	"github.com/kproxy/kproxy/proxier/sysctl"
)

// terminationInterval is how often draining IPVS destinations are checked.
const terminationInterval = time.Second

// newIPVSBackend builds one family's IPVS proxier with its ipsets and
// iptables rules, and the drain loop of its removed destinations. The
// Proxier reports IPVS mode's own metrics (failures by seam, virtual
// servers, kube-ipvs0 addresses).
func (p *proxy) newIPVSBackend(fam v1.IPFamily) (familyBackend, error) {
	if p.cfg.DryRun {
		return p.newIPVSDryRun(fam)
	}
	handle, err := vs.NewKernelHandle("")
	if err != nil {
		return familyBackend{}, fmt.Errorf("ipvs mode needs the ip_vs kernel module: %w", err)
	}
	if err := p.applyIPVSStartupSettings(handle); err != nil {
		handle.Close()
		return familyBackend{}, err
	}
	addrs, err := addresses.NewNetlink("", fam)
	if err != nil {
		return familyBackend{}, err
	}
	restorer, err := xtables.New(xtablesOptions(p.cfg, p.iptablesBackend, fam))
	if err != nil {
		return familyBackend{}, err
	}
	randomFully, err := restorer.HasRandomFully(context.Background())
	if err != nil {
		return familyBackend{}, fmt.Errorf("query iptables version: %w", err)
	}
	backend, err := ipvs.New(p.ipvsOptions(fam, handle, addrs, restorer, randomFully))
	if err != nil {
		return familyBackend{}, err
	}
	return familyBackend{backend: backend, restorer: restorer, reportsOwnFailures: true,
		background: func(ctx context.Context) { p.runIPVSTermination(ctx, fam, backend) }}, nil
}

func (p *proxy) ipvsOptions(fam v1.IPFamily, h vs.Handle, a addresses.Manager, r netfilter.Restorer, randomFully bool) ipvs.Options {
	var nodeIP netip.Addr
	if ips := p.nodeIPs[fam]; len(ips) > 0 {
		nodeIP = ips[0]
	}
	return ipvs.Options{
		Handle: h, Addresses: a, Family: fam, Scheduler: p.cfg.IPVS.Scheduler, Metrics: p.metrics,
		NodePorts:    p.cfg.NodePortAddresses.ForFamily(fam, p.nodeIPs[fam]),
		ExcludeCIDRs: prefixesOfFamily(p.cfg.IPVS.ExcludeCIDRs, fam),
		Netfilter: &ipvs.NetfilterOptions{
			IPSet: execIPSet(p.cfg), Restorer: r, NodeIP: nodeIP,
			Rules: rules.Options{MasqueradeMark: p.cfg.MasqueradeMark, MasqueradeAll: p.cfg.MasqueradeAll,
				LocalDetector: p.localDetector(fam), RandomFully: randomFully},
		},
	}
}

// newIPVSDryRun plans against fakes and prints the plan (no root, nothing touched).
func (p *proxy) newIPVSDryRun(fam v1.IPFamily) (familyBackend, error) {
	opts := p.ipvsOptions(fam, nil, nil, nil, true)
	d, err := ipvs.NewDryRun(ipvs.DryRunOptions{Options: opts, Local: p.nodeIPs[fam], Out: p.out})
	if err != nil {
		return familyBackend{}, err
	}
	return familyBackend{backend: d, reportsOwnFailures: true}, nil
}

// cleanupIPVS removes IPVS mode's virtual servers, kube-ipvs0, chains and
// ipsets (kproxy's and upstream kube-proxy's). A kernel without IPVS has no
// virtual servers; a host without ipset or ip6tables has nothing of theirs.
// A failure to reach IPVS does not stop the removal of the rest.
func cleanupIPVS(ctx context.Context, cfg *config.Config, backend xtables.Backend, logger klog.Logger) error {
	opts := ipvs.CleanupOptions{ExcludeCIDRs: cfg.IPVS.ExcludeCIDRs}
	h, openErr := openIPVSForCleanup(vs.KernelHasIPVS, vs.NewKernelHandle, logger)
	if h != nil {
		defer h.Close()
		opts.Handle = h
	}
	if _, err := exec.LookPath("ipset"); err == nil {
		opts.IPSet = execIPSet(cfg)
	}
	for _, fam := range []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol} {
		f := ipvs.CleanupFamily{Family: fam}
		a, err := addresses.NewNetlink("", fam)
		if err != nil {
			return errors.Join(openErr, err)
		}
		defer a.Close()
		f.Addresses = a
		if opts.Device == nil {
			opts.Device = a
		}
		r, err := xtables.New(xtablesOptions(cfg, backend, fam))
		if err == nil && fam == v1.IPv6Protocol {
			_, err = r.Save(ctx, "nat") // ip6tables may be unusable here: then it has nothing to clean
		}
		if err == nil {
			f.Restorer = r
		} else if fam == v1.IPv4Protocol {
			return errors.Join(openErr, err)
		}
		opts.Families = append(opts.Families, f)
	}
	res, err := ipvs.Cleanup(ctx, opts)
	logger.Info("Removed kube-proxy IPVS state", "virtualServers", res.VirtualServers, "chains", res.Chains,
		"ipsets", res.Sets, "deviceRemoved", res.DeviceRemoved)
	return errors.Join(openErr, err)
}

// openIPVSForCleanup opens the IPVS table the cleanup empties, or none
// (nil, nil) when the kernel has no IPVS: that is the usual case on a node
// that never ran IPVS mode, nothing to clean, so it is logged at V(2) and
// no handle is opened (moby/ipvs would run modprobe and log an error of its
// own, see vs.KernelHasIPVS). Failing to find out, or to open the table,
// is an error.
func openIPVSForCleanup(hasIPVS func() (bool, error), open func(nsPath string) (*vs.KernelHandle, error),
	logger klog.Logger) (*vs.KernelHandle, error) {
	has, err := hasIPVS()
	if err != nil {
		return nil, fmt.Errorf("remove IPVS virtual servers: %w", err)
	}
	if !has {
		logger.V(2).Info("No IPVS in this kernel: no virtual servers to remove")
		return nil, nil
	}
	h, err := open("")
	if err != nil {
		return nil, fmt.Errorf("remove IPVS virtual servers: %w", err)
	}
	return h, nil
}

// applyIPVSStartupSettings checks the scheduler (in a throwaway network
// namespace when this process may create one), then sets IPVS mode's
// sysctls, strictARP and the IPVS timeouts in kproxy's own namespace.
func (p *proxy) applyIPVSStartupSettings(h *vs.KernelHandle) error {
	opts := startup.Options{
		Handle: h, Sysctls: sysctl.Dir{Root: sysctl.ProcSys}, Scheduler: p.cfg.IPVS.Scheduler,
		StrictARP:     p.cfg.IPVS.StrictARP,
		Timeouts:      vs.Timeouts{TCP: p.cfg.IPVS.TCPTimeout, TCPFin: p.cfg.IPVS.TCPFinTimeout, UDP: p.cfg.IPVS.UDPTimeout},
		KernelRelease: kernelRelease(),
	}
	if probe, err := vs.NewIsolatedKernelHandle(); err != nil {
		p.logger.V(2).Info("Probing the IPVS scheduler in kproxy's own network namespace", "reason", err.Error())
	} else {
		defer probe.Close()
		opts.Probe = probe
	}
	res, err := startup.Apply(opts)
	for _, c := range res.Sysctls {
		p.logger.V(1).Info("Changed sysctl", "name", c.Key, "before", c.Old, "after", c.New)
	}
	if err != nil {
		return fmt.Errorf("ipvs mode start-up settings: %w", err)
	}
	if res.TimeoutsSet {
		p.logger.Info("Set IPVS timeouts", "tcp", opts.Timeouts.TCP, "tcpFin", opts.Timeouts.TCPFin, "udp", opts.Timeouts.UDP)
	}
	return nil
}

func prefixesOfFamily(in []netip.Prefix, fam v1.IPFamily) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range in {
		if proxier.FamilyOf(p.Addr()) == fam {
			out = append(out, p)
		}
	}
	return out
}

// runIPVSTermination drains b's removed IPVS destinations until ctx ends.
func (p *proxy) runIPVSTermination(ctx context.Context, fam v1.IPFamily, b *ipvs.Proxier) {
	tick := time.NewTicker(terminationInterval)
	defer tick.Stop()
	logger := p.logger.WithValues("ipFamily", fam)
	b.RunTermination(ctx, tick.C, func(n int, err error) {
		if err != nil {
			logger.Error(err, "Draining IPVS destinations failed")
		} else if n > 0 {
			logger.V(2).Info("Deleted drained IPVS destinations", "count", n)
		}
	})
}

// kernelRelease is uname -r, or "" when unreadable.
func kernelRelease() string {
	release, err := realHost().sysctls.Read("kernel/osrelease")
	if err != nil {
		return ""
	}
	return release
}
