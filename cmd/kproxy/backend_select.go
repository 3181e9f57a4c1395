package main

import (
	"context"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/ipvs/ipset"
	"github.com/kproxy/kproxy/proxier/command"
	"github.com/kproxy/kproxy/proxier/netfilter/xtables"
)

// selectIPTablesBackend decides, once per process, which iptables every
// command runs (both families, both proxy modes, --cleanup): the one
// --iptables-backend names, or with "auto" the one upstream's image would
// pick (xtables.DetectBackend), and logs the choice and why.
func selectIPTablesBackend(ctx context.Context, cfg *config.Config, logger klog.Logger) xtables.Backend {
	switch cfg.IPTablesBackend {
	case config.IPTablesBackendNFT:
		logger.Info("Using iptables backend", "backend", xtables.BackendNFT, "reason", "--iptables-backend")
		return xtables.BackendNFT
	case config.IPTablesBackendLegacy:
		logger.Info("Using iptables backend", "backend", xtables.BackendLegacy, "reason", "--iptables-backend")
		return xtables.BackendLegacy
	}
	det, err := xtables.DetectBackend(ctx, xtables.DetectOptions{Timeout: cfg.CommandTimeout})
	if err != nil {
		logger.Info("iptables backend detection interrupted", "err", err.Error())
	}
	kv := []any{"backend", backendName(det.Backend), "reason", det.Reason}
	if det.LegacyRules >= 0 {
		kv = append(kv, "legacyRules", det.LegacyRules, "nftRules", det.NFTRules)
	}
	logger.Info("Detected iptables backend", kv...)
	return det.Backend
}

func backendName(b xtables.Backend) string {
	if b == xtables.BackendDefault {
		return "as installed"
	}
	return string(b)
}

// xtablesOptions are the options of every iptables runner of the process.
func xtablesOptions(cfg *config.Config, backend xtables.Backend, fam v1.IPFamily) xtables.Options {
	return xtables.Options{Family: fam, Backend: backend, Timeout: cfg.CommandTimeout}
}

// execIPSet is IPVS mode's ipset runner, bounded like the iptables commands.
func execIPSet(cfg *config.Config) *ipset.Exec {
	return ipset.NewExec(ipset.ExecOptions{Timeouts: command.Timeouts{Base: cfg.CommandTimeout}})
}
