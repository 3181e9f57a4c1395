package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/kube-proxy/config/v1alpha1"
)

const ignoredWithConfig = " This parameter is ignored if a config file is specified by --config."

// Flags holds kube-proxy's command-line flags plus kproxy's additions. Bind it
// with AddTo, parse, then call Resolve with the same FlagSet (Resolve needs
// pflag's Changed to apply upstream's precedence).
type Flags struct {
	// Flags with no config-file equivalent (honoured with and without --config).
	ConfigFile       string
	WriteConfigTo    string
	Cleanup          bool
	InitOnly         bool
	Master           string
	HostnameOverride string

	// Config-mapped flags (ignored when --config is given).
	Kubeconfig                  string
	ContentType                 string
	QPS                         float32
	Burst                       int32
	FeatureGates                map[string]bool
	BindAddress                 string
	HealthzBindAddress          string
	MetricsBindAddress          string
	BindAddressHardFail         bool
	Profiling                   bool
	ShowHiddenMetricsForVersion string
	ProxyMode                   string

	MasqueradeBit         int32
	MasqueradeAll         bool
	LocalhostNodePorts    bool
	IPTablesSyncPeriod    time.Duration
	IPTablesMinSyncPeriod time.Duration

	IPVSSyncPeriod    time.Duration
	IPVSMinSyncPeriod time.Duration
	IPVSScheduler     string
	IPVSExcludeCIDRs  []string
	IPVSStrictARP     bool
	IPVSTCPTimeout    time.Duration
	IPVSTCPFinTimeout time.Duration
	IPVSUDPTimeout    time.Duration

	DetectLocalMode        string
	PodBridgeInterface     string
	PodInterfaceNamePrefix string
	ClusterCIDR            string
	NodePortAddresses      []string

	OOMScoreAdj                    int32
	ConntrackMaxPerCore            int32
	ConntrackMin                   int32
	ConntrackTCPEstablishedTimeout time.Duration
	ConntrackTCPCloseWaitTimeout   time.Duration
	ConntrackTCPBeLiberal          bool
	ConntrackUDPTimeout            time.Duration
	ConntrackUDPStreamTimeout      time.Duration
	ConfigSyncPeriod               time.Duration

	// Deprecated flags.
	HealthzPort    int32
	MetricsPort    int32
	ProxyPortRange string

	// kproxy additions.
	Manifests string
	// ManifestsPollInterval is how often --manifests files are checked for changes.
	ManifestsPollInterval time.Duration
	DryRun                bool
	Once                  bool
	Version               bool
	// IPTablesBackend is "auto" (detect as upstream's image does), "nft" or "legacy".
	IPTablesBackend string
	// CommandTimeout bounds every external command (iptables, ipset).
	CommandTimeout time.Duration
	// NFTablesNetlink: partial syncs over netlink in nftables mode.
	NFTablesNetlink bool
}

// IPTables backends of --iptables-backend.
const (
	IPTablesBackendAuto   = "auto"
	IPTablesBackendNFT    = "nft"
	IPTablesBackendLegacy = "legacy"
)

// DefaultCommandTimeout is --command-timeout's default (see proxier/command).
const DefaultCommandTimeout = time.Minute

// AddTo registers the flags on fs, with upstream's defaults (so --help shows
// them). It does not register -v/--v or other logging flags.
func (f *Flags) AddTo(fs *pflag.FlagSet) {
	d := &v1alpha1.KubeProxyConfiguration{}
	Defaults(d)
	f.addCommandFlags(fs)
	f.addClientFlags(fs, d)
	f.addServerFlags(fs, d)
	f.addIPTablesFlags(fs, d)
	f.addIPVSFlags(fs, d)
	f.addLocalFlags(fs)
	f.addConntrackFlags(fs, d)
	f.addDeprecatedFlags(fs)
	f.addKproxyFlags(fs)
}

func (f *Flags) addCommandFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.ConfigFile, "config", "", "The path to the configuration file.")
	fs.StringVar(&f.WriteConfigTo, "write-config-to", "", "If set, write the default configuration values to this file and exit.")
	fs.BoolVar(&f.Cleanup, "cleanup", false, "If true cleanup iptables and ipvs rules and exit.")
	fs.BoolVar(&f.InitOnly, "init-only", false, "If true, perform any initialization steps that must be done with full root privileges, and then exit. After doing this, you can run kube-proxy again with only the CAP_NET_ADMIN capability.")
	fs.StringVar(&f.HostnameOverride, "hostname-override", "", "If non-empty, will be used as the name of the Node that kube-proxy is running on. If unset, the node name is assumed to be the same as the node's hostname.")
}

func (f *Flags) addClientFlags(fs *pflag.FlagSet, d *v1alpha1.KubeProxyConfiguration) {
	f.FeatureGates = map[string]bool{}
	fs.Var(&featureGatesValue{m: &f.FeatureGates}, "feature-gates", "A set of key=value pairs that describe feature gates for alpha/experimental features. kproxy records them and serves them on /configz."+ignoredWithConfig)
	fs.StringVar(&f.Kubeconfig, "kubeconfig", "", "Path to kubeconfig file with authorization information (the master location can be overridden by the master flag).")
	fs.StringVar(&f.Master, "master", "", "The address of the Kubernetes API server (overrides any value in kubeconfig)")
	fs.StringVar(&f.ContentType, "kube-api-content-type", d.ClientConnection.ContentType, "Content type of requests sent to apiserver.")
	fs.Int32Var(&f.Burst, "kube-api-burst", d.ClientConnection.Burst, "Burst to use while talking with kubernetes apiserver")
	fs.Float32Var(&f.QPS, "kube-api-qps", d.ClientConnection.QPS, "QPS to use while talking with kubernetes apiserver")
}

func (f *Flags) addServerFlags(fs *pflag.FlagSet, d *v1alpha1.KubeProxyConfiguration) {
	fs.StringVar(&f.BindAddress, "bind-address", d.BindAddress, "Overrides kube-proxy's idea of what its node's primary IP is. Note that the name is a historical artifact, and kube-proxy does not actually bind any sockets to this IP."+ignoredWithConfig)
	fs.StringVar(&f.HealthzBindAddress, "healthz-bind-address", d.HealthzBindAddress, "The IP address and port for the health check server to serve on, defaulting to \"0.0.0.0:10256\"."+ignoredWithConfig)
	fs.StringVar(&f.MetricsBindAddress, "metrics-bind-address", d.MetricsBindAddress, "The IP address and port for the metrics server to serve on, defaulting to \"127.0.0.1:10249\". (Set to \"0.0.0.0:10249\" / \"[::]:10249\" to bind on all interfaces.) Set empty to disable."+ignoredWithConfig)
	fs.BoolVar(&f.BindAddressHardFail, "bind-address-hard-fail", false, "If true kube-proxy will treat failure to bind to a port as fatal and exit")
	fs.BoolVar(&f.Profiling, "profiling", false, "If true enables profiling via web interface on /debug/pprof handler."+ignoredWithConfig)
	fs.StringVar(&f.ShowHiddenMetricsForVersion, "show-hidden-metrics-for-version", "", "The previous version for which you want to show hidden metrics. Only the previous minor version is meaningful, other values will not be allowed. The format is <major>.<minor>, e.g.: '1.16'. The purpose of this format is make sure you have the opportunity to notice if the next release hides additional metrics, rather than being surprised when they are permanently removed in the release after that."+ignoredWithConfig)
	fs.StringVar(&f.ProxyMode, "proxy-mode", "", "Which proxy mode to use: on Linux this can be 'iptables' (default), 'ipvs' or 'nftables'."+ignoredWithConfig)
	fs.DurationVar(&f.ConfigSyncPeriod, "config-sync-period", d.ConfigSyncPeriod.Duration, "How often configuration from the apiserver is refreshed.  Must be greater than 0.")
}

func (f *Flags) addIPTablesFlags(fs *pflag.FlagSet, d *v1alpha1.KubeProxyConfiguration) {
	fs.Int32Var(&f.MasqueradeBit, "iptables-masquerade-bit", *d.IPTables.MasqueradeBit, "If using the iptables or ipvs proxy mode, the bit of the fwmark space to mark packets requiring SNAT with.  Must be within the range [0, 31].")
	fs.BoolVar(&f.MasqueradeAll, "masquerade-all", false, "SNAT all traffic sent via Service cluster IPs. This may be required with some CNI plugins. Only supported on Linux.")
	fs.BoolVar(&f.LocalhostNodePorts, "iptables-localhost-nodeports", *d.IPTables.LocalhostNodePorts, "If false, kube-proxy will disable the legacy behavior of allowing NodePort services to be accessed via localhost. (Applies only to iptables mode and IPv4; localhost NodePorts are never allowed with other proxy modes or with IPv6.)")
	fs.DurationVar(&f.IPTablesSyncPeriod, "iptables-sync-period", d.IPTables.SyncPeriod.Duration, "An interval (e.g. '5s', '1m', '2h22m') indicating how frequently various re-synchronizing and cleanup operations are performed. Must be greater than 0.")
	fs.DurationVar(&f.IPTablesMinSyncPeriod, "iptables-min-sync-period", d.IPTables.MinSyncPeriod.Duration, "The minimum period between iptables rule resyncs (e.g. '5s', '1m', '2h22m'). A value of 0 means every Service or EndpointSlice change will result in an immediate iptables resync.")
}

func (f *Flags) addIPVSFlags(fs *pflag.FlagSet, d *v1alpha1.KubeProxyConfiguration) {
	fs.DurationVar(&f.IPVSSyncPeriod, "ipvs-sync-period", d.IPVS.SyncPeriod.Duration, "An interval (e.g. '5s', '1m', '2h22m') indicating how frequently various re-synchronizing and cleanup operations are performed. Must be greater than 0.")
	fs.DurationVar(&f.IPVSMinSyncPeriod, "ipvs-min-sync-period", d.IPVS.MinSyncPeriod.Duration, "The minimum period between IPVS rule resyncs (e.g. '5s', '1m', '2h22m'). A value of 0 means every Service or EndpointSlice change will result in an immediate IPVS resync.")
	fs.StringVar(&f.IPVSScheduler, "ipvs-scheduler", "", "The ipvs scheduler type when proxy mode is ipvs")
	fs.StringSliceVar(&f.IPVSExcludeCIDRs, "ipvs-exclude-cidrs", nil, "A comma-separated list of CIDRs which the ipvs proxier should not touch when cleaning up IPVS rules.")
	fs.BoolVar(&f.IPVSStrictARP, "ipvs-strict-arp", false, "Enable strict ARP by setting arp_ignore to 1 and arp_announce to 2")
	fs.DurationVar(&f.IPVSTCPTimeout, "ipvs-tcp-timeout", 0, "The timeout for idle IPVS TCP connections, 0 to leave as-is. (e.g. '5s', '1m', '2h22m').")
	fs.DurationVar(&f.IPVSTCPFinTimeout, "ipvs-tcpfin-timeout", 0, "The timeout for IPVS TCP connections after receiving a FIN packet, 0 to leave as-is. (e.g. '5s', '1m', '2h22m').")
	fs.DurationVar(&f.IPVSUDPTimeout, "ipvs-udp-timeout", 0, "The timeout for IPVS UDP packets, 0 to leave as-is. (e.g. '5s', '1m', '2h22m').")
}

func (f *Flags) addLocalFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.DetectLocalMode, "detect-local-mode", "", "Mode to use to detect local traffic."+ignoredWithConfig)
	fs.StringVar(&f.PodBridgeInterface, "pod-bridge-interface", "", "A bridge interface name. When --detect-local-mode is set to BridgeInterface, kube-proxy will consider traffic to be local if it originates from this bridge.")
	fs.StringVar(&f.PodInterfaceNamePrefix, "pod-interface-name-prefix", "", "An interface name prefix. When --detect-local-mode is set to InterfaceNamePrefix, kube-proxy will consider traffic to be local if it originates from any interface whose name begins with this prefix.")
	fs.StringVar(&f.ClusterCIDR, "cluster-cidr", "", "The CIDR range of the pods in the cluster. (For dual-stack clusters, this can be a comma-separated dual-stack pair of CIDR ranges.). When --detect-local-mode is set to ClusterCIDR, kube-proxy will consider traffic to be local if its source IP is in this range. (Otherwise it is not used.)"+ignoredWithConfig)
	fs.StringSliceVar(&f.NodePortAddresses, "nodeport-addresses", nil, "A list of CIDR ranges that contain valid node IPs, and/or the keywords 'primary' (the node's primary IPs according to the Node object), 'localhost' and 'all'. If set, connections to NodePort services will only be accepted on node IPs matching the list. If unset, NodePort connections will be accepted on all local IPs."+ignoredWithConfig)
}

func (f *Flags) addConntrackFlags(fs *pflag.FlagSet, d *v1alpha1.KubeProxyConfiguration) {
	ct := &d.Conntrack
	fs.Int32Var(&f.OOMScoreAdj, "oom-score-adj", *d.OOMScoreAdj, "The oom-score-adj value for kube-proxy process. Values must be within the range [-1000, 1000]."+ignoredWithConfig)
	fs.Int32Var(&f.ConntrackMaxPerCore, "conntrack-max-per-core", *ct.MaxPerCore, "Maximum number of NAT connections to track per CPU core (0 to leave the limit as-is and ignore conntrack-min).")
	fs.Int32Var(&f.ConntrackMin, "conntrack-min", *ct.Min, "Minimum number of conntrack entries to allocate, regardless of conntrack-max-per-core (set conntrack-max-per-core=0 to leave the limit as-is).")
	fs.DurationVar(&f.ConntrackTCPEstablishedTimeout, "conntrack-tcp-timeout-established", ct.TCPEstablishedTimeout.Duration, "Idle timeout for established TCP connections (0 to leave as-is)")
	fs.DurationVar(&f.ConntrackTCPCloseWaitTimeout, "conntrack-tcp-timeout-close-wait", ct.TCPCloseWaitTimeout.Duration, "NAT timeout for TCP connections in the CLOSE_WAIT state")
	fs.BoolVar(&f.ConntrackTCPBeLiberal, "conntrack-tcp-be-liberal", false, "Enable liberal mode for tracking TCP packets by setting nf_conntrack_tcp_be_liberal to 1")
	fs.DurationVar(&f.ConntrackUDPTimeout, "conntrack-udp-timeout", 0, "Idle timeout for UNREPLIED UDP connections (0 to leave as-is)")
	fs.DurationVar(&f.ConntrackUDPStreamTimeout, "conntrack-udp-timeout-stream", 0, "Idle timeout for ASSURED UDP connections (0 to leave as-is)")
}

func (f *Flags) addDeprecatedFlags(fs *pflag.FlagSet) {
	fs.Int32Var(&f.HealthzPort, "healthz-port", DefaultHealthzPort, "The port to bind the health check server. Use 0 to disable.")
	_ = fs.MarkDeprecated("healthz-port", "This flag is deprecated and will be removed in a future release. Please use --healthz-bind-address instead.")
	fs.Int32Var(&f.MetricsPort, "metrics-port", DefaultMetricsPort, "The port to bind the metrics server. Use 0 to disable.")
	_ = fs.MarkDeprecated("metrics-port", "This flag is deprecated and will be removed in a future release. Please use --metrics-bind-address instead.")
	fs.StringVar(&f.ProxyPortRange, "proxy-port-range", "", "This was previously used to configure the userspace proxy, but is now unused.")
	_ = fs.MarkDeprecated("proxy-port-range", "This flag has no effect and will be removed in a future release.")
}

func (f *Flags) addKproxyFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.Manifests, "manifests", "", "kproxy: read Services, EndpointSlices and the Node from YAML manifests at PATH (a file or a directory, re-read on change) instead of the API server.")
	fs.DurationVar(&f.ManifestsPollInterval, "manifests-poll-interval", time.Second, "kproxy: how often the --manifests files are checked for changes.")
	fs.BoolVar(&f.DryRun, "dry-run", false, "kproxy: compute and print the rules that would be applied, without changing the system.")
	fs.BoolVar(&f.Once, "once", false, "kproxy: perform a single sync, then exit.")
	fs.BoolVar(&f.Version, "version", false, "Print version information and quit.")
	f.IPTablesBackend = IPTablesBackendAuto
	fs.Var(&choiceValue{v: &f.IPTablesBackend, choices: []string{IPTablesBackendAuto, IPTablesBackendNFT, IPTablesBackendLegacy}},
		"iptables-backend", "kproxy: which iptables to run: 'nft' (iptables-nft), 'legacy' (iptables-legacy), or 'auto' to use the one the node's kubelet uses, as kube-proxy's image decides it (kubelet's KUBE-IPTABLES-HINT or KUBE-KUBELET-CANARY chain, else the backend holding more rules, else nft). Used by every iptables command, in both proxy modes and by --cleanup.")
	fs.BoolVar(&f.NFTablesNetlink, "nftables-netlink", true, "kproxy: in nftables mode, write partial syncs (one service's chains and map elements) directly over netlink instead of running nft -f, which first loads a cache of the whole table (about 160 ms at 10000 services). Full syncs always use nft -f. After 3 failed netlink transactions in a row kproxy uses nft -f only.")
	fs.DurationVar(&f.CommandTimeout, "command-timeout", DefaultCommandTimeout, "kproxy: bound on each external command (iptables, ip6tables, ipset); restores also get 5s per MB of input. A command that overruns is killed and its sync fails and is retried.")
}

// choiceValue is a string flag restricted to a few values.
type choiceValue struct {
	v       *string
	choices []string
}

func (c *choiceValue) String() string {
	if c.v == nil {
		return ""
	}
	return *c.v
}

func (c *choiceValue) Set(s string) error {
	if !slices.Contains(c.choices, s) {
		return fmt.Errorf("must be one of %s", strings.Join(c.choices, ", "))
	}
	*c.v = s
	return nil
}

func (c *choiceValue) Type() string { return "string" }
