package config

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/kube-proxy/config/v1alpha1"

	"github.com/kproxy/kproxy/proxier/netfilter"
)

// Resolve builds the effective configuration with upstream's precedence:
// with --config, the file (defaulted) wins over every config-mapped flag
// except --hostname-override; without it, upstream's defaults are overridden
// by the flags set on the command line. The result is validated.
func Resolve(flags *Flags, fs *pflag.FlagSet) (*Config, error) {
	return resolve(flags, fs, os.Hostname)
}

func resolve(flags *Flags, fs *pflag.FlagSet, hostname func() (string, error)) (*Config, error) {
	versioned, ignored, err := effectiveVersioned(flags, fs)
	if err != nil {
		return nil, err
	}
	if err := Validate(versioned); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	nodeName, err := resolveNodeName(versioned.HostnameOverride, hostname)
	if err != nil {
		return nil, err
	}
	cfg, err := project(versioned)
	if err != nil {
		return nil, err
	}
	cfg.NodeName = nodeName
	cfg.IgnoredFlags = ignored
	cfg.ConfigFile = flags.ConfigFile
	cfg.WriteConfigTo = flags.WriteConfigTo
	cfg.Master = flags.Master
	cfg.Manifests = flags.Manifests
	cfg.ManifestsPollInterval = flags.ManifestsPollInterval
	cfg.DryRun = flags.DryRun
	cfg.Once = flags.Once
	cfg.NFTablesNetlink = flags.NFTablesNetlink
	cfg.Cleanup = flags.Cleanup
	cfg.InitOnly = flags.InitOnly
	cfg.IPTablesBackend = flags.IPTablesBackend
	if cfg.IPTablesBackend == "" {
		cfg.IPTablesBackend = IPTablesBackendAuto
	}
	if flags.CommandTimeout <= 0 && fs.Changed("command-timeout") {
		return nil, fmt.Errorf("--command-timeout must be positive, got %v", flags.CommandTimeout)
	}
	cfg.CommandTimeout = flags.CommandTimeout
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = DefaultCommandTimeout
	}
	return cfg, nil
}

// effectiveVersioned returns the merged, defaulted v1alpha1 object and, with
// --config, the config-mapped flags that were set but ignored.
func effectiveVersioned(flags *Flags, fs *pflag.FlagSet) (*v1alpha1.KubeProxyConfiguration, []string, error) {
	var cfg *v1alpha1.KubeProxyConfiguration
	var ignored []string
	if flags.ConfigFile != "" {
		loaded, err := LoadFile(flags.ConfigFile)
		if err != nil {
			return nil, nil, err
		}
		cfg = loaded
		Defaults(cfg)
		for _, m := range configMappedFlags() {
			if fs.Changed(m.name) {
				ignored = append(ignored, m.name)
			}
		}
		for _, name := range []string{"healthz-port", "metrics-port"} {
			if fs.Changed(name) {
				ignored = append(ignored, name)
			}
		}
	} else {
		cfg = &v1alpha1.KubeProxyConfiguration{}
		Defaults(cfg)
		for _, m := range configMappedFlags() {
			if fs.Changed(m.name) {
				m.apply(flags, cfg)
			}
		}
		applyDeprecatedPorts(flags, fs.Changed, cfg)
		platformDefaults(cfg)
	}
	if flags.HostnameOverride != "" {
		name := strings.TrimSpace(flags.HostnameOverride)
		if name == "" {
			return nil, nil, errors.New("empty hostname-override is invalid")
		}
		cfg.HostnameOverride = strings.ToLower(name)
	}
	return cfg, ignored, nil
}

// resolveNodeName is upstream's GetHostname: the override, else the
// hostname, trimmed and lowercased.
func resolveNodeName(override string, hostname func() (string, error)) (string, error) {
	name := override
	if name == "" {
		h, err := hostname()
		if err != nil {
			return "", fmt.Errorf("couldn't determine hostname: %w", err)
		}
		name = h
	}
	name = strings.TrimSpace(name)
	if name == "" {
		return "", errors.New("empty hostname is invalid")
	}
	return strings.ToLower(name), nil
}

// project converts a validated v1alpha1 object into Config.
func project(v *v1alpha1.KubeProxyConfiguration) (*Config, error) {
	c := &Config{
		Mode:                effectiveMode(v.Mode),
		MasqueradeBit:       int(deref(v.IPTables.MasqueradeBit, defaultMasqueradeBit)),
		MasqueradeAll:       v.IPTables.MasqueradeAll,
		LocalhostNodePorts:  deref(v.IPTables.LocalhostNodePorts, true),
		DetectLocalMode:     v.DetectLocalMode,
		BridgeInterface:     v.DetectLocal.BridgeInterface,
		InterfaceNamePrefix: v.DetectLocal.InterfaceNamePrefix,
		HealthzBindAddress:  v.HealthzBindAddress,
		MetricsBindAddress:  v.MetricsBindAddress,
		BindAddressHardFail: v.BindAddressHardFail,
		EnableProfiling:     v.EnableProfiling,
		ConfigSyncPeriod:    v.ConfigSyncPeriod.Duration,
		Kubeconfig:          v.ClientConnection.Kubeconfig,
		QPS:                 v.ClientConnection.QPS,
		Burst:               int(v.ClientConnection.Burst),
		ContentType:         v.ClientConnection.ContentType,
		AcceptContentTypes:  v.ClientConnection.AcceptContentTypes,
		Conntrack:           projectConntrack(&v.Conntrack),
		OOMScoreAdj:         deref(v.OOMScoreAdj, defaultOOMScoreAdj),
		FeatureGates:        maps.Clone(v.FeatureGates),
		Versioned:           v,
	}
	c.MasqueradeMark = netfilter.MasqueradeMark(c.MasqueradeBit)
	c.SyncPeriod, c.MinSyncPeriod = v.IPTables.SyncPeriod.Duration, v.IPTables.MinSyncPeriod.Duration
	switch c.Mode {
	case ModeIPVS:
		c.SyncPeriod, c.MinSyncPeriod = v.IPVS.SyncPeriod.Duration, v.IPVS.MinSyncPeriod.Duration
	case ModeNFTables:
		// nftables mode reads its own section, as upstream does.
		c.SyncPeriod, c.MinSyncPeriod = v.NFTables.SyncPeriod.Duration, v.NFTables.MinSyncPeriod.Duration
		c.MasqueradeBit = int(deref(v.NFTables.MasqueradeBit, defaultMasqueradeBit))
		c.MasqueradeAll = v.NFTables.MasqueradeAll
		c.MasqueradeMark = netfilter.MasqueradeMark(c.MasqueradeBit)
	}
	var err error
	if c.BindAddress, err = netip.ParseAddr(v.BindAddress); err != nil {
		return nil, fmt.Errorf("bindAddress: %w", err)
	}
	if v.ClusterCIDR != "" {
		if c.ClusterCIDRs, err = parseCIDRList(v.ClusterCIDR); err != nil {
			return nil, fmt.Errorf("clusterCIDR: %w", err)
		}
	}
	if c.NodePortAddresses, err = ParseNodePortAddresses(v.NodePortAddresses); err != nil {
		return nil, err
	}
	c.IPVS = projectIPVS(&v.IPVS)
	return c, nil
}

func projectIPVS(v *v1alpha1.KubeProxyIPVSConfiguration) IPVSConfig {
	out := IPVSConfig{
		Scheduler:     v.Scheduler,
		StrictARP:     v.StrictARP,
		TCPTimeout:    v.TCPTimeout.Duration,
		TCPFinTimeout: v.TCPFinTimeout.Duration,
		UDPTimeout:    v.UDPTimeout.Duration,
	}
	if out.Scheduler == "" {
		out.Scheduler = DefaultIPVSScheduler
	}
	// Validate checks excludeCIDRs only in ipvs mode, as upstream; other
	// modes do not use them, so an invalid entry is skipped here.
	for _, s := range v.ExcludeCIDRs {
		if p, err := netip.ParsePrefix(s); err == nil {
			out.ExcludeCIDRs = append(out.ExcludeCIDRs, p.Masked())
		}
	}
	return out
}

func projectConntrack(v *v1alpha1.KubeProxyConntrackConfiguration) ConntrackConfig {
	out := ConntrackConfig{
		MaxPerCore:       deref(v.MaxPerCore, 0),
		Min:              deref(v.Min, 0),
		TCPBeLiberal:     v.TCPBeLiberal,
		UDPTimeout:       v.UDPTimeout.Duration,
		UDPStreamTimeout: v.UDPStreamTimeout.Duration,
	}
	if v.TCPEstablishedTimeout != nil {
		out.TCPEstablishedTimeout = v.TCPEstablishedTimeout.Duration
	}
	if v.TCPCloseWaitTimeout != nil {
		out.TCPCloseWaitTimeout = v.TCPCloseWaitTimeout.Duration
	}
	return out
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
