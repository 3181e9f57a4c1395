package config

import (
	"net/netip"
	"time"

	"k8s.io/kube-proxy/config/v1alpha1"

	"github.com/kproxy/kproxy/proxier/netfilter"
)

// Proxy modes kproxy implements. The values are upstream's mode strings.
const (
	ModeIPTables v1alpha1.ProxyMode = "iptables"
	ModeIPVS     v1alpha1.ProxyMode = "ipvs"
	// ModeNFTables is upstream's nftables mode (package nftables); it reads the
	// nftables section and defaults nodePortAddresses to "primary".
	ModeNFTables v1alpha1.ProxyMode = "nftables"
)

// Local traffic detection modes (upstream's LocalMode values).
const (
	LocalModeClusterCIDR         v1alpha1.LocalMode = "ClusterCIDR"
	LocalModeNodeCIDR            v1alpha1.LocalMode = "NodeCIDR"
	LocalModeBridgeInterface     v1alpha1.LocalMode = "BridgeInterface"
	LocalModeInterfaceNamePrefix v1alpha1.LocalMode = "InterfaceNamePrefix"
)

// Keywords accepted in nodePortAddresses besides CIDRs.
const (
	NodePortAddressesPrimary   = netfilter.NodePortAddressesPrimary
	NodePortAddressesLocalhost = netfilter.NodePortAddressesLocalhost
	NodePortAddressesAll       = netfilter.NodePortAddressesAll
)

// Upstream's well-known ports and defaults.
const (
	DefaultHealthzPort = 10256
	DefaultMetricsPort = 10249
	// DefaultIPVSScheduler is what an empty ipvs.scheduler means.
	DefaultIPVSScheduler = "rr"
)

// Config is the resolved, validated configuration in ready-to-use form. It is
// a projection of Versioned; treat both as read-only.
type Config struct {
	Mode v1alpha1.ProxyMode
	// NodeName is --hostname-override, else hostnameOverride, else the
	// lowercased hostname.
	NodeName string
	// BindAddress is the primary IP override; unspecified (0.0.0.0 / ::) means
	// "detect from the Node object".
	BindAddress netip.Addr

	// SyncPeriod and MinSyncPeriod come from the section of the selected mode.
	SyncPeriod    time.Duration
	MinSyncPeriod time.Duration

	MasqueradeBit int
	// MasqueradeMark is 1<<MasqueradeBit in upstream's format, e.g. "0x00004000".
	MasqueradeMark     string
	MasqueradeAll      bool
	LocalhostNodePorts bool

	DetectLocalMode     v1alpha1.LocalMode
	ClusterCIDRs        []netip.Prefix
	BridgeInterface     string
	InterfaceNamePrefix string

	NodePortAddresses netfilter.NodePortAddresses

	// HealthzBindAddress and MetricsBindAddress are host:port; "" disables the server.
	HealthzBindAddress  string
	MetricsBindAddress  string
	BindAddressHardFail bool
	EnableProfiling     bool

	ConfigSyncPeriod time.Duration

	Kubeconfig         string
	Master             string
	QPS                float32
	Burst              int
	ContentType        string
	AcceptContentTypes string

	IPVS        IPVSConfig
	Conntrack   ConntrackConfig
	OOMScoreAdj int32

	FeatureGates map[string]bool

	// kproxy and command-only settings.
	ConfigFile            string
	WriteConfigTo         string
	Manifests             string
	ManifestsPollInterval time.Duration
	DryRun                bool
	Once                  bool
	Cleanup               bool
	InitOnly              bool
	// IPTablesBackend is --iptables-backend (auto, nft, legacy).
	IPTablesBackend string
	// CommandTimeout is --command-timeout.
	CommandTimeout time.Duration
	// NFTablesNetlink is --nftables-netlink: nftables mode writes partial
	// syncs over netlink rather than with nft -f.
	NFTablesNetlink bool

	// IgnoredFlags lists config-mapped flags that were set on the command line
	// but ignored because --config was given (upstream ignores them silently;
	// the command may warn).
	IgnoredFlags []string

	// Versioned is the effective configuration (defaults applied, flags or
	// file merged), as served on /configz.
	Versioned *v1alpha1.KubeProxyConfiguration
}

// IPVSConfig holds the ipvs section. Zero timeouts mean "leave the kernel's value".
type IPVSConfig struct {
	// Scheduler is never empty: "" in the file resolves to DefaultIPVSScheduler.
	Scheduler     string
	ExcludeCIDRs  []netip.Prefix
	StrictARP     bool
	TCPTimeout    time.Duration
	TCPFinTimeout time.Duration
	UDPTimeout    time.Duration
}

// ConntrackConfig holds the conntrack section. Zero values mean "leave the
// kernel's setting as-is" (MaxPerCore 0 also ignores Min).
type ConntrackConfig struct {
	MaxPerCore            int32
	Min                   int32
	TCPEstablishedTimeout time.Duration
	TCPCloseWaitTimeout   time.Duration
	TCPBeLiberal          bool
	UDPTimeout            time.Duration
	UDPStreamTimeout      time.Duration
}
