package main

import (
	"context"
	"fmt"
	"io"
	"os"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/knftables"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/nftables"
	"github.com/kproxy/kproxy/proxier/netfilter/nft"
)

// newNFTablesBackend builds one family's nftables proxier on the real nft
// binary, or, with --dry-run, on a fake table that prints each transaction
// (the nft -f input) before applying it to itself.
func (p *proxy) newNFTablesBackend(fam v1.IPFamily) (familyBackend, error) {
	nft, err := p.nftInterface(fam)
	if err != nil {
		return familyBackend{}, fmt.Errorf("nftables mode needs nft: %w", err)
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
	backend, err := nftables.New(opts)
	return familyBackend{backend: backend, reportsOwnFailures: true}, err
}

func (p *proxy) nftInterface(fam v1.IPFamily) (knftables.Interface, error) {
	if p.cfg.DryRun {
		return &printingNFT{Fake: knftables.NewFake(nftFamily(fam), nftables.TableName), family: fam, out: p.out}, nil
	}
	return nft.Open(context.Background(), nft.Options{Family: nftFamily(fam), Table: nftables.TableName,
		Timeout: p.cfg.CommandTimeout})
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

// nftablesFamilies is IPv4, plus IPv6 when nft can make an ip6 table
// interface here (a dry run assumes both).
func nftablesFamilies(ctx context.Context, cfg *config.Config, logger klog.Logger) []v1.IPFamily {
	fams := []v1.IPFamily{v1.IPv4Protocol}
	if cfg.DryRun {
		return append(fams, v1.IPv6Protocol)
	}
	if _, err := nft.Open(ctx, nft.Options{Family: knftables.IPv6Family, Table: nftables.TableName,
		Timeout: cfg.CommandTimeout}); err != nil {
		logger.Info("IPv6 proxying disabled: nft cannot handle ip6 tables here", "reason", err.Error())
		return fams
	}
	return append(fams, v1.IPv6Protocol)
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
