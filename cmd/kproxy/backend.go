package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os/exec"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/iptables"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/conntrack"
	"github.com/kproxy/kproxy/proxier/healthcheck"
	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/xtables"
)

// detectFamilies returns the IP families to proxy in iptables and IPVS
// mode: IPv4, plus IPv6 when ip6tables works here (upstream runs dual stack
// whenever the host can). nftables mode's are nftablesFamilies.
func detectFamilies(ctx context.Context, cfg *config.Config, backend xtables.Backend, logger klog.Logger) []v1.IPFamily {
	fams := []v1.IPFamily{v1.IPv4Protocol}
	if cfg.DryRun {
		return append(fams, v1.IPv6Protocol)
	}
	r, err := xtables.New(xtablesOptions(cfg, backend, v1.IPv6Protocol))
	if err == nil {
		_, err = r.Save(ctx, "nat")
	}
	if err != nil {
		logger.Info("IPv6 proxying disabled: ip6tables is not usable here", "reason", err.Error())
		return fams
	}
	return append(fams, v1.IPv6Protocol)
}

// familyBackend is one family's backend as newBackend builds it.
type familyBackend struct {
	backend  proxier.Backend
	restorer netfilter.Restorer
	// reportsOwnFailures: the backend counts its failed syncs in the
	// metrics itself, by what failed (IPVS mode); otherwise every failed
	// sync is a failed iptables-restore (iptables mode, as upstream).
	reportsOwnFailures bool
	// background, when set, runs beside the sync loop until its context
	// ends (IPVS mode drains removed destinations).
	background func(ctx context.Context)
}

func (p *proxy) newBackend(fam v1.IPFamily) (familyBackend, error) {
	switch p.cfg.Mode {
	case config.ModeIPVS:
		return p.newIPVSBackend(fam)
	case config.ModeNFTables:
		return p.newNFTablesBackend(fam)
	}
	restorer, randomFully, err := p.restorer(fam)
	if err != nil {
		return familyBackend{}, err
	}
	opts := p.renderOptions(fam, randomFully)
	if err := p.enableLocalhostNodePorts(opts); err != nil {
		return familyBackend{}, err
	}
	backend, err := iptables.New(iptables.Options{Restorer: restorer, Render: opts})
	return familyBackend{backend: backend, restorer: restorer}, err
}

// routeLocalnetSysctl lets DNAT turn 127.0.0.0/8 destinations into pod
// addresses (localhost NodePorts); tcpBeLiberalSysctl makes conntrack accept
// out-of-window TCP packets. Keys are paths under /proc/sys.
const (
	routeLocalnetSysctl = "net/ipv4/conf/all/route_localnet"
	tcpBeLiberalSysctl  = netfilterSysctlDir + "/nf_conntrack_tcp_be_liberal"
)

// enableLocalhostNodePorts sets route_localnet when IPv4 NodePorts answer on
// loopback, as upstream does; the KUBE-FIREWALL rule keeps other hosts from
// reaching 127.0.0.0/8 through it.
func (p *proxy) enableLocalhostNodePorts(opts iptables.RenderOptions) error {
	if p.cfg.DryRun || opts.Family != v1.IPv4Protocol || !opts.LocalhostNodePorts {
		return nil
	}
	match := p.cfg.NodePortAddresses.ForFamily(v1.IPv4Protocol, p.nodeIPs[v1.IPv4Protocol])
	if !match.ContainsIPv4Loopback() {
		return nil
	}
	sysctls := p.host.sysctls
	if cur, err := sysctls.Get(routeLocalnetSysctl); err == nil && cur == 1 {
		return nil
	}
	if err := sysctls.Set(routeLocalnetSysctl, 1); err != nil {
		return fmt.Errorf("enable localhost NodePorts: %w", err)
	}
	p.logger.Info("Set sysctl to allow localhost NodePorts", "sysctl", "net.ipv4.conf.all.route_localnet", "value", 1)
	return nil
}

func (p *proxy) restorer(fam v1.IPFamily) (netfilter.Restorer, bool, error) {
	if p.cfg.DryRun {
		return &printingRestorer{family: fam, out: p.out}, true, nil
	}
	r, err := xtables.New(xtablesOptions(p.cfg, p.iptablesBackend, fam))
	if err != nil {
		return nil, false, err
	}
	randomFully, err := r.HasRandomFully(context.Background())
	if err != nil {
		return nil, false, fmt.Errorf("query iptables version: %w", err)
	}
	return r, randomFully, nil
}

func (p *proxy) renderOptions(fam v1.IPFamily, randomFully bool) iptables.RenderOptions {
	o := iptables.RenderOptions{
		Family: fam, MasqueradeMark: p.cfg.MasqueradeMark, MasqueradeAll: p.cfg.MasqueradeAll,
		LocalDetector: p.localDetector(fam), LocalhostNodePorts: p.cfg.LocalhostNodePorts && fam == v1.IPv4Protocol,
		RandomFully: randomFully, ConntrackTCPBeLiberal: p.tcpBeLiberal(),
	}
	match := p.cfg.NodePortAddresses.ForFamily(fam, p.nodeIPs[fam])
	if !match.All {
		o.NodePortAddresses = iptables.NodePortAddresses{Restricted: true, IPs: p.nodePortAddrs(fam, match)}
	}
	return o
}

// tcpBeLiberal reports whether conntrack accepts out-of-window TCP packets,
// in which case the INVALID-state DROP rule is left out. Like upstream it
// reads the live sysctl (the host or conntrack.tcpBeLiberal may have set
// it); a dry run, which may run elsewhere, goes by the configuration.
func (p *proxy) tcpBeLiberal() bool {
	if p.cfg.Conntrack.TCPBeLiberal || p.cfg.DryRun {
		return p.cfg.Conntrack.TCPBeLiberal
	}
	v, err := p.host.sysctls.Get(tcpBeLiberalSysctl)
	liberal := err == nil && v != 0
	if liberal {
		p.logger.Info("nf_conntrack_tcp_be_liberal is set: no DROP rule for INVALID packets")
	}
	return liberal
}

// localDetector builds the "traffic from pods" matches of detectLocalMode.
func (p *proxy) localDetector(fam v1.IPFamily) netfilter.LocalDetector {
	switch p.cfg.DetectLocalMode {
	case config.LocalModeBridgeInterface:
		return netfilter.LocalDetector{IfLocal: []string{"-i", p.cfg.BridgeInterface},
			IfNotLocal: []string{"!", "-i", p.cfg.BridgeInterface}}
	case config.LocalModeInterfaceNamePrefix:
		return netfilter.LocalDetector{IfLocal: []string{"-i", p.cfg.InterfaceNamePrefix + "+"},
			IfNotLocal: []string{"!", "-i", p.cfg.InterfaceNamePrefix + "+"}}
	case config.LocalModeClusterCIDR, "":
		for _, c := range p.cfg.ClusterCIDRs {
			if proxier.FamilyOf(c.Addr()) == fam {
				return netfilter.LocalDetector{IfLocal: []string{"-s", c.String()}, IfNotLocal: []string{"!", "-s", c.String()}}
			}
		}
	default:
		p.logger.Info("Local traffic detection mode not supported yet; no local detector", "mode", p.cfg.DetectLocalMode)
	}
	return netfilter.LocalDetector{}
}

// familyObservers adds what runs after a family's sync besides health and metrics:
// health-check node ports (once, on the first family) and UDP conntrack cleanup.
func (p *proxy) familyObservers(fam v1.IPFamily) ([]proxier.SyncObserver, error) {
	if p.cfg.DryRun {
		return nil, nil
	}
	var obs []proxier.SyncObserver
	if len(p.families) == 0 {
		servers := healthcheck.NewServiceHealth(healthcheck.ServiceHealthOptions{
			Addresses: p.healthCheckAddresses(), Proxy: p.health,
		})
		obs = append(obs, serviceHealthObserver{servers: servers, logger: p.logger})
	}
	cleaner, err := conntrack.NewCleaner(conntrack.Options{Family: fam, Metrics: p.metrics})
	if err != nil {
		p.logger.Info("UDP conntrack cleanup disabled", "ipFamily", fam, "reason", err.Error())
		return obs, nil
	}
	return append(obs, conntrackObserver{cleaner: cleaner, logger: p.logger}), nil
}

// healthCheckAddresses limits health-check node port servers to nodePortAddresses (empty = all).
func (p *proxy) healthCheckAddresses() []netip.Addr {
	var out []netip.Addr
	for _, fam := range []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol} {
		m := p.cfg.NodePortAddresses.ForFamily(fam, p.nodeIPs[fam])
		if m.All {
			return nil
		}
		out = append(out, p.nodePortAddrs(fam, m)...)
	}
	return out
}

// cleanupIPTables removes every rule kproxy or upstream kube-proxy installed, for both families.
func cleanupIPTables(ctx context.Context, cfg *config.Config, backend xtables.Backend, logger klog.Logger) error {
	var errs []error
	for _, fam := range []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol} {
		r, err := xtables.New(xtablesOptions(cfg, backend, fam))
		if err == nil {
			_, err = netfilter.CleanupIPTablesMode(ctx, r)
		}
		if err != nil {
			var ee *exec.Error
			if fam == v1.IPv6Protocol && errors.As(err, &ee) {
				continue // no ip6tables binary: nothing to clean
			}
			errs = append(errs, fmt.Errorf("clean up %s rules: %w", fam, err))
			continue
		}
		logger.Info("Removed kube-proxy iptables rules", "ipFamily", fam)
	}
	return errors.Join(errs...)
}

// printingRestorer is --dry-run's kernel: it prints what would be restored and sees empty tables.
type printingRestorer struct {
	family v1.IPFamily
	out    io.Writer
}

func (r *printingRestorer) Restore(_ context.Context, data []byte) error {
	fmt.Fprintf(r.out, "# kproxy --dry-run: %s iptables-restore --noflush input\n", r.family)
	_, err := io.Copy(r.out, bytes.NewReader(data))
	return err
}

func (r *printingRestorer) Save(context.Context, string) ([]byte, error) { return nil, nil }

func configzBody(cfg *config.Config) ([]byte, error) {
	return config.ConfigzJSON(cfg.Versioned)
}
