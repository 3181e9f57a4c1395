package config

import (
	"net"
	"net/netip"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/kube-proxy/config/v1alpha1"
)

// Upstream default values (v1alpha1 SetDefaults_KubeProxyConfiguration,
// pkg/kubelet/qos, pkg/cluster/ports, platformApplyDefaults on Linux).
const (
	defaultBindAddress           = "0.0.0.0"
	defaultOOMScoreAdj           = int32(-999)
	defaultMasqueradeBit         = int32(14)
	defaultSyncPeriod            = 30 * time.Second
	defaultMinSyncPeriod         = 1 * time.Second
	defaultConntrackMaxPerCore   = int32(32 * 1024)
	defaultConntrackMin          = int32(128 * 1024)
	defaultTCPEstablishedTimeout = 24 * time.Hour
	defaultTCPCloseWaitTimeout   = 1 * time.Hour
	defaultConfigSyncPeriod      = 15 * time.Minute
	defaultContentType           = "application/vnd.kubernetes.protobuf"
	defaultQPS                   = float32(5)
	defaultBurst                 = int32(10)
)

// Defaults fills the unset fields of cfg with upstream's defaults, in place.
// As upstream, a nil pointer, an empty string and a zero duration all mean
// "unset" (so iptables.minSyncPeriod: 0s becomes 1s); ipvs.minSyncPeriod has
// no default and stays 0. It also sets apiVersion/kind when empty.
func Defaults(cfg *v1alpha1.KubeProxyConfiguration) {
	if cfg.APIVersion == "" && cfg.Kind == "" {
		cfg.TypeMeta = typeMeta()
	}
	defaultAddresses(cfg)
	defaultProxySections(cfg)
	defaultConntrack(&cfg.Conntrack)
	defaultClientConnection(cfg)
	if cfg.OOMScoreAdj == nil {
		cfg.OOMScoreAdj = ptrTo(defaultOOMScoreAdj)
	}
	durationDefault(&cfg.ConfigSyncPeriod, defaultConfigSyncPeriod)
	if cfg.FeatureGates == nil {
		cfg.FeatureGates = map[string]bool{}
	}
	logsapi.SetRecommendedLoggingConfiguration(&cfg.Logging)
	platformDefaults(cfg)
}

// platformDefaults is upstream's Linux platformApplyDefaults. Upstream runs it
// after flags are merged, so an explicit --proxy-mode="" still means iptables.
func platformDefaults(cfg *v1alpha1.KubeProxyConfiguration) {
	if cfg.Mode == "" {
		cfg.Mode = ModeIPTables
	}
	if cfg.Mode == ModeNFTables && len(cfg.NodePortAddresses) == 0 {
		cfg.NodePortAddresses = []string{NodePortAddressesPrimary}
	}
	if cfg.DetectLocalMode == "" {
		cfg.DetectLocalMode = LocalModeClusterCIDR
	}
}

func defaultAddresses(cfg *v1alpha1.KubeProxyConfiguration) {
	if cfg.BindAddress == "" {
		cfg.BindAddress = defaultBindAddress
	}
	healthzHost, metricsHost := "0.0.0.0", "127.0.0.1"
	if addr, err := netip.ParseAddr(cfg.BindAddress); err != nil || !addr.Unmap().Is4() {
		// Upstream treats anything that is not IPv4 as IPv6 here.
		healthzHost, metricsHost = "::", "::1"
	}
	cfg.HealthzBindAddress = addressDefault(cfg.HealthzBindAddress, healthzHost, DefaultHealthzPort)
	cfg.MetricsBindAddress = addressDefault(cfg.MetricsBindAddress, metricsHost, DefaultMetricsPort)
}

func addressDefault(addr, host string, port int) string {
	if addr == "" {
		return net.JoinHostPort(host, strconv.Itoa(port))
	}
	return appendPortIfNeeded(addr, port)
}

// appendPortIfNeeded adds port to a bare IP; anything else (already host:port,
// or invalid, which validation reports) is returned unchanged.
func appendPortIfNeeded(addr string, port int) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	if _, err := netip.ParseAddr(addr); err != nil {
		return addr
	}
	return net.JoinHostPort(addr, strconv.Itoa(port))
}

func defaultProxySections(cfg *v1alpha1.KubeProxyConfiguration) {
	if cfg.IPTables.MasqueradeBit == nil {
		cfg.IPTables.MasqueradeBit = ptrTo(defaultMasqueradeBit)
	}
	if cfg.IPTables.LocalhostNodePorts == nil {
		cfg.IPTables.LocalhostNodePorts = ptrTo(true)
	}
	durationDefault(&cfg.IPTables.SyncPeriod, defaultSyncPeriod)
	durationDefault(&cfg.IPTables.MinSyncPeriod, defaultMinSyncPeriod)
	durationDefault(&cfg.IPVS.SyncPeriod, defaultSyncPeriod)
	if cfg.NFTables.MasqueradeBit == nil {
		cfg.NFTables.MasqueradeBit = ptrTo(defaultMasqueradeBit)
	}
	durationDefault(&cfg.NFTables.SyncPeriod, defaultSyncPeriod)
	durationDefault(&cfg.NFTables.MinSyncPeriod, defaultMinSyncPeriod)
}

func defaultConntrack(ct *v1alpha1.KubeProxyConntrackConfiguration) {
	if ct.MaxPerCore == nil {
		ct.MaxPerCore = ptrTo(defaultConntrackMaxPerCore)
	}
	if ct.Min == nil {
		ct.Min = ptrTo(defaultConntrackMin)
	}
	if ct.TCPEstablishedTimeout == nil {
		ct.TCPEstablishedTimeout = &metav1.Duration{Duration: defaultTCPEstablishedTimeout}
	}
	if ct.TCPCloseWaitTimeout == nil {
		// One hour, to outlive typical server-side FIN_WAIT timeouts (kubernetes#32551).
		ct.TCPCloseWaitTimeout = &metav1.Duration{Duration: defaultTCPCloseWaitTimeout}
	}
}

func defaultClientConnection(cfg *v1alpha1.KubeProxyConfiguration) {
	cc := &cfg.ClientConnection
	if cc.ContentType == "" {
		cc.ContentType = defaultContentType
	}
	if cc.QPS == 0 {
		cc.QPS = defaultQPS
	}
	if cc.Burst == 0 {
		cc.Burst = defaultBurst
	}
}

func durationDefault(d *metav1.Duration, def time.Duration) {
	if d.Duration == 0 {
		d.Duration = def
	}
}

func typeMeta() metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: v1alpha1.SchemeGroupVersion.String(), Kind: kindKubeProxyConfiguration}
}

func ptrTo[T any](v T) *T { return &v }
