package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/knftables"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/informers"
	"github.com/kproxy/kproxy/nftables"
	"github.com/kproxy/kproxy/nftables/nftnl"
	"github.com/kproxy/kproxy/proxier/netfilter/nft"
)

// newNFTablesBackend builds one family's nftables proxier on the
// interface nftablesFamilies opened for it: the real nft binary, or, with
// --dry-run, a fake table that prints each transaction (the nft -f input)
// before applying it to itself.
func (p *proxy) newNFTablesBackend(fam v1.IPFamily) (familyBackend, error) {
	nft, ok := p.nft[fam]
	if !ok {
		return familyBackend{}, fmt.Errorf("no nft interface opened for %s", fam)
	}
	match := p.cfg.NodePortAddresses.ForFamily(fam, p.nodeIPs[fam])
	opts := nftables.Options{NFT: nft, Family: fam, MasqueradeMark: p.cfg.MasqueradeMark,
		MasqueradeAll: p.cfg.MasqueradeAll, LocalDetector: p.localDetector(fam), NodePortsAll: match.All,
		Metrics: p.metrics}
	if !match.All {
		opts.NodePortIPs = p.nodePortAddrs(fam, match)
	}
	if ips := p.nodeIPs[fam]; len(ips) > 0 {
		opts.NodeIP = ips[0]
	}
	if conn := p.openNetlink(fam); conn != nil {
		opts.Netlink = conn
	}
	backend, err := nftables.New(opts)
	return familyBackend{backend: backend, reportsOwnFailures: true}, err
}

// openNetlink opens the netlink connection partial syncs are written on
// (--nftables-netlink; never for a dry run, which prints nft text). A
// failure only costs speed: partial syncs then run nft -f, as full ones do.
func (p *proxy) openNetlink(fam v1.IPFamily) *nftnl.Conn {
	if !p.cfg.NFTablesNetlink || p.cfg.DryRun {
		return nil
	}
	conn, err := nftnl.Open(nftnl.Options{})
	if err != nil {
		p.logger.Error(err, "Writing nftables partial syncs with nft -f: no netlink connection", "ipFamily", fam)
		return nil
	}
	p.logger.V(2).Info("Writing nftables partial syncs over netlink", "ipFamily", fam)
	return conn
}

func nftFamily(fam v1.IPFamily) knftables.Family {
	if fam == v1.IPv6Protocol {
		return knftables.IPv6Family
	}
	return knftables.IPv4Family
}

// checkNFTablesHost refuses to start nftables mode where upstream would:
// nft older than 1.0.1, or a kernel older than 5.13 unless
// KUBE_PROXY_NFTABLES_SKIP_KERNEL_VERSION_CHECK is set. A dry run needs
// neither.
func checkNFTablesHost(ctx context.Context, cfg *config.Config) error {
	if cfg.Mode != config.ModeNFTables || cfg.DryRun {
		return nil
	}
	return nft.CheckHost(ctx, cfg.CommandTimeout, os.Getenv)
}

// nftablesFamilies opens nft for each family nftables mode proxies, once
// (the family's backend is given that interface): IPv4, which nftables
// mode needs, and IPv6 when nft can handle ip6 tables here. A dry run
// prints to fakes of both.
func nftablesFamilies(ctx context.Context, cfg *config.Config, out io.Writer, logger klog.Logger) (
	[]v1.IPFamily, map[v1.IPFamily]knftables.Interface, error) {
	if cfg.DryRun {
		nfts := map[v1.IPFamily]knftables.Interface{}
		for _, fam := range []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol} {
			nfts[fam] = &printingNFT{Fake: knftables.NewFake(nftFamily(fam), nftables.TableName), family: fam, out: out}
		}
		return []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol}, nfts, nil
	}
	open := func(fam v1.IPFamily) (knftables.Interface, error) {
		return nft.Open(ctx, nft.Options{Family: nftFamily(fam), Table: nftables.TableName, Timeout: cfg.CommandTimeout})
	}
	v4, err := open(v1.IPv4Protocol)
	if err != nil {
		return nil, nil, fmt.Errorf("nftables mode needs nft: %w", err)
	}
	nfts := map[v1.IPFamily]knftables.Interface{v1.IPv4Protocol: v4}
	v6, err := open(v1.IPv6Protocol)
	if err != nil {
		logger.Info("IPv6 proxying disabled: nft cannot handle ip6 tables here", "reason", err.Error())
		return []v1.IPFamily{v1.IPv4Protocol}, nfts, nil
	}
	nfts[v1.IPv6Protocol] = v6
	return []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol}, nfts, nil
}

// printingNFT is --dry-run's kernel: a fake table that prints every
// transaction it is given.
type printingNFT struct {
	*knftables.Fake
	family v1.IPFamily
	out    io.Writer
}

func (n *printingNFT) Run(ctx context.Context, tx *knftables.Transaction) error {
	fmt.Fprintf(n.out, "# kproxy --dry-run: %s nft -f input\n%s", n.family, tx.String())
	return n.Fake.Run(ctx, tx)
}

// serviceCIDRSetter is a backend that uses the cluster's service CIDRs
// (nftables mode's drop rule for unallocated ClusterIPs).
type serviceCIDRSetter interface {
	SetServiceCIDRs([]netip.Prefix) bool
}

// watchServiceCIDRs feeds the ServiceCIDR objects' ranges to the nftables
// backends, as upstream's nftables mode watches them. Only against an API
// server; with --manifests the manifest source gives the files' ones to
// setServiceCIDRs (runSource).
func (p *proxy) watchServiceCIDRs(ctx context.Context) {
	if p.client == nil || p.cfg.Mode != config.ModeNFTables {
		return
	}
	logger := p.logger.WithName("servicecidrs")
	err := informers.RunServiceCIDRs(ctx, informers.ServiceCIDRsOptions{
		Client: p.client, ResyncPeriod: p.cfg.ConfigSyncPeriod, Logger: logger,
		OnChange: p.setServiceCIDRs,
	})
	if err != nil {
		logger.Error(err, "Not watching ServiceCIDRs; no drop rule for unallocated ClusterIPs")
	}
}

// setServiceCIDRs gives the cluster's service CIDRs to the backends that
// use them and asks for a full sync of each family whose ranges changed
// (upstream waits for the next one). Both sources call it.
func (p *proxy) setServiceCIDRs(cidrs []netip.Prefix) {
	p.logger.V(2).Info("Service CIDRs changed", "cidrs", cidrs)
	for _, fp := range p.families {
		if s, ok := fp.backend.(serviceCIDRSetter); ok && s.SetServiceCIDRs(cidrs) {
			fp.runner.ForceFull()
		}
	}
}
