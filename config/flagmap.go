package config

import (
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kube-proxy/config/v1alpha1"
)

// flagMapping applies one config-mapped flag to the v1alpha1 object.
type flagMapping struct {
	name  string
	apply func(f *Flags, c *v1alpha1.KubeProxyConfiguration)
}

// configMappedFlags lists, in registration order, every flag that upstream
// ignores when --config is given. The deprecated port flags are handled
// separately (they edit an address rather than set a field).
func configMappedFlags() []flagMapping {
	return slices.Concat(clientAndServerMappings(), proxyMappings(), localAndConntrackMappings())
}

func clientAndServerMappings() []flagMapping {
	return []flagMapping{
		{"feature-gates", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) {
			c.FeatureGates = make(map[string]bool, len(f.FeatureGates))
			for k, v := range f.FeatureGates {
				c.FeatureGates[k] = v
			}
		}},
		{"kubeconfig", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) { c.ClientConnection.Kubeconfig = f.Kubeconfig }},
		{"kube-api-content-type", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) { c.ClientConnection.ContentType = f.ContentType }},
		{"kube-api-burst", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) { c.ClientConnection.Burst = f.Burst }},
		{"kube-api-qps", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) { c.ClientConnection.QPS = f.QPS }},
		{"bind-address", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) { c.BindAddress = f.BindAddress }},
		{"healthz-bind-address", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) { c.HealthzBindAddress = f.HealthzBindAddress }},
		{"metrics-bind-address", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) { c.MetricsBindAddress = f.MetricsBindAddress }},
		{"bind-address-hard-fail", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) { c.BindAddressHardFail = f.BindAddressHardFail }},
		{"profiling", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) { c.EnableProfiling = f.Profiling }},
		{"show-hidden-metrics-for-version", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) {
			c.ShowHiddenMetricsForVersion = f.ShowHiddenMetricsForVersion
		}},
		{"config-sync-period", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) { c.ConfigSyncPeriod = dur(f.ConfigSyncPeriod) }},
	}
}

// proxyMappings: the --iptables-* sync flags also feed the nftables section,
// as upstream (there are no nftables flags).
func proxyMappings() []flagMapping {
	return []flagMapping{
		{"proxy-mode", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) { c.Mode = v1alpha1.ProxyMode(f.ProxyMode) }},
		{"iptables-masquerade-bit", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) {
			c.IPTables.MasqueradeBit = ptrTo(f.MasqueradeBit)
			c.NFTables.MasqueradeBit = ptrTo(f.MasqueradeBit)
		}},
		{"masquerade-all", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) {
			c.IPTables.MasqueradeAll = f.MasqueradeAll
			c.NFTables.MasqueradeAll = f.MasqueradeAll
		}},
		{"iptables-localhost-nodeports", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) {
			c.IPTables.LocalhostNodePorts = ptrTo(f.LocalhostNodePorts)
		}},
		{"iptables-sync-period", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) {
			c.IPTables.SyncPeriod = dur(f.IPTablesSyncPeriod)
			c.NFTables.SyncPeriod = dur(f.IPTablesSyncPeriod)
		}},
		{"iptables-min-sync-period", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) {
			c.IPTables.MinSyncPeriod = dur(f.IPTablesMinSyncPeriod)
			c.NFTables.MinSyncPeriod = dur(f.IPTablesMinSyncPeriod)
		}},
		{"ipvs-sync-period", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) { c.IPVS.SyncPeriod = dur(f.IPVSSyncPeriod) }},
		{"ipvs-min-sync-period", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) { c.IPVS.MinSyncPeriod = dur(f.IPVSMinSyncPeriod) }},
		{"ipvs-scheduler", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) { c.IPVS.Scheduler = f.IPVSScheduler }},
		{"ipvs-exclude-cidrs", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) {
			c.IPVS.ExcludeCIDRs = slices.Clone(f.IPVSExcludeCIDRs)
		}},
		{"ipvs-strict-arp", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) { c.IPVS.StrictARP = f.IPVSStrictARP }},
		{"ipvs-tcp-timeout", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) { c.IPVS.TCPTimeout = dur(f.IPVSTCPTimeout) }},
		{"ipvs-tcpfin-timeout", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) { c.IPVS.TCPFinTimeout = dur(f.IPVSTCPFinTimeout) }},
		{"ipvs-udp-timeout", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) { c.IPVS.UDPTimeout = dur(f.IPVSUDPTimeout) }},
	}
}

func localAndConntrackMappings() []flagMapping {
	return []flagMapping{
		{"detect-local-mode", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) {
			c.DetectLocalMode = v1alpha1.LocalMode(f.DetectLocalMode)
		}},
		{"pod-bridge-interface", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) {
			c.DetectLocal.BridgeInterface = f.PodBridgeInterface
		}},
		{"pod-interface-name-prefix", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) {
			c.DetectLocal.InterfaceNamePrefix = f.PodInterfaceNamePrefix
		}},
		{"cluster-cidr", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) { c.ClusterCIDR = f.ClusterCIDR }},
		{"nodeport-addresses", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) {
			c.NodePortAddresses = slices.Clone(f.NodePortAddresses)
		}},
		{"oom-score-adj", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) { c.OOMScoreAdj = ptrTo(f.OOMScoreAdj) }},
		{"conntrack-max-per-core", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) {
			c.Conntrack.MaxPerCore = ptrTo(f.ConntrackMaxPerCore)
		}},
		{"conntrack-min", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) { c.Conntrack.Min = ptrTo(f.ConntrackMin) }},
		{"conntrack-tcp-timeout-established", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) {
			c.Conntrack.TCPEstablishedTimeout = ptrTo(dur(f.ConntrackTCPEstablishedTimeout))
		}},
		{"conntrack-tcp-timeout-close-wait", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) {
			c.Conntrack.TCPCloseWaitTimeout = ptrTo(dur(f.ConntrackTCPCloseWaitTimeout))
		}},
		{"conntrack-tcp-be-liberal", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) { c.Conntrack.TCPBeLiberal = f.ConntrackTCPBeLiberal }},
		{"conntrack-udp-timeout", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) {
			c.Conntrack.UDPTimeout = dur(f.ConntrackUDPTimeout)
		}},
		{"conntrack-udp-timeout-stream", func(f *Flags, c *v1alpha1.KubeProxyConfiguration) {
			c.Conntrack.UDPStreamTimeout = dur(f.ConntrackUDPStreamTimeout)
		}},
	}
}

// applyDeprecatedPorts handles --healthz-port/--metrics-port: 0 disables the
// server, another value replaces the address's port; when unset, a bare IP
// given to the address flag gets the default port.
func applyDeprecatedPorts(f *Flags, changed func(string) bool, c *v1alpha1.KubeProxyConfiguration) {
	c.HealthzBindAddress = addressWithPort(c.HealthzBindAddress, f.HealthzPort, changed("healthz-port"), DefaultHealthzPort)
	c.MetricsBindAddress = addressWithPort(c.MetricsBindAddress, f.MetricsPort, changed("metrics-port"), DefaultMetricsPort)
}

func addressWithPort(addr string, port int32, portSet bool, defPort int) string {
	if !portSet {
		return appendPortIfNeeded(addr, defPort)
	}
	if port == 0 {
		return ""
	}
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	return appendPortIfNeeded(addr, int(port))
}

func dur(d time.Duration) metav1.Duration {
	return metav1.Duration{Duration: d}
}

// featureGatesValue is a pflag.Value for "Name=bool,Name2=bool" lists; repeated
// flags merge.
type featureGatesValue struct {
	m *map[string]bool
}

func (v *featureGatesValue) String() string {
	if v.m == nil || *v.m == nil {
		return ""
	}
	pairs := make([]string, 0, len(*v.m))
	for k, b := range *v.m {
		pairs = append(pairs, k+"="+strconv.FormatBool(b))
	}
	sort.Strings(pairs)
	return strings.Join(pairs, ",")
}

func (v *featureGatesValue) Set(s string) error {
	if *v.m == nil {
		*v.m = map[string]bool{}
	}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, val, ok := strings.Cut(item, "=")
		if !ok {
			return fmt.Errorf("missing bool value for %s", k)
		}
		b, err := strconv.ParseBool(strings.TrimSpace(val))
		if err != nil {
			return fmt.Errorf("invalid value of %s=%s: %w", k, val, err)
		}
		(*v.m)[strings.TrimSpace(k)] = b
	}
	return nil
}

func (v *featureGatesValue) Type() string { return "mapStringBool" }
