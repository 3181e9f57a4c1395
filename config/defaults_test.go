package config

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kube-proxy/config/v1alpha1"
)

func TestDefaultsOnEmpty(t *testing.T) {
	c := &v1alpha1.KubeProxyConfiguration{}
	Defaults(c)
	checks := []struct {
		name      string
		got, want any
	}{
		{"apiVersion", c.APIVersion, "kubeproxy.config.k8s.io/v1alpha1"},
		{"kind", c.Kind, "KubeProxyConfiguration"},
		{"mode", c.Mode, ModeIPTables},
		{"bindAddress", c.BindAddress, "0.0.0.0"},
		{"healthz", c.HealthzBindAddress, "0.0.0.0:10256"},
		{"metrics", c.MetricsBindAddress, "127.0.0.1:10249"},
		{"masqueradeBit", *c.IPTables.MasqueradeBit, int32(14)},
		{"localhostNodePorts", *c.IPTables.LocalhostNodePorts, true},
		{"masqueradeAll", c.IPTables.MasqueradeAll, false},
		{"iptables sync", c.IPTables.SyncPeriod.Duration, 30 * time.Second},
		{"iptables min sync", c.IPTables.MinSyncPeriod.Duration, time.Second},
		{"ipvs sync", c.IPVS.SyncPeriod.Duration, 30 * time.Second},
		{"ipvs min sync", c.IPVS.MinSyncPeriod.Duration, time.Duration(0)},
		{"ipvs scheduler stays empty", c.IPVS.Scheduler, ""},
		{"nftables bit", *c.NFTables.MasqueradeBit, int32(14)},
		{"nftables sync", c.NFTables.SyncPeriod.Duration, 30 * time.Second},
		{"nftables min sync", c.NFTables.MinSyncPeriod.Duration, time.Second},
		{"oomScoreAdj", *c.OOMScoreAdj, int32(-999)},
		{"maxPerCore", *c.Conntrack.MaxPerCore, int32(32768)},
		{"min", *c.Conntrack.Min, int32(131072)},
		{"established", c.Conntrack.TCPEstablishedTimeout.Duration, 24 * time.Hour},
		{"close wait", c.Conntrack.TCPCloseWaitTimeout.Duration, time.Hour},
		{"udp timeout stays 0", c.Conntrack.UDPTimeout.Duration, time.Duration(0)},
		{"configSyncPeriod", c.ConfigSyncPeriod.Duration, 15 * time.Minute},
		{"detectLocalMode", c.DetectLocalMode, LocalModeClusterCIDR},
		{"contentType", c.ClientConnection.ContentType, "application/vnd.kubernetes.protobuf"},
		{"qps", c.ClientConnection.QPS, float32(5)},
		{"burst", c.ClientConnection.Burst, int32(10)},
		{"featureGates non-nil", c.FeatureGates != nil, true},
		{"logging format", c.Logging.Format, "text"},
		{"nodePortAddresses unset", c.NodePortAddresses == nil, true},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestDefaultsKeepSetValues(t *testing.T) {
	c := &v1alpha1.KubeProxyConfiguration{
		Mode:               ModeIPVS,
		HealthzBindAddress: "10.0.0.1:1234",
		IPTables: v1alpha1.KubeProxyIPTablesConfiguration{
			MasqueradeBit:      ptrTo(int32(0)),
			LocalhostNodePorts: ptrTo(false),
			SyncPeriod:         metav1.Duration{Duration: time.Minute},
		},
		IPVS:             v1alpha1.KubeProxyIPVSConfiguration{MinSyncPeriod: metav1.Duration{Duration: 5 * time.Second}},
		OOMScoreAdj:      ptrTo(int32(0)),
		Conntrack:        v1alpha1.KubeProxyConntrackConfiguration{MaxPerCore: ptrTo(int32(0)), TCPEstablishedTimeout: &metav1.Duration{}},
		DetectLocalMode:  LocalModeNodeCIDR,
		ConfigSyncPeriod: metav1.Duration{Duration: time.Minute},
	}
	Defaults(c)
	checks := []struct {
		name      string
		got, want any
	}{
		{"mode", c.Mode, ModeIPVS},
		{"healthz", c.HealthzBindAddress, "10.0.0.1:1234"},
		{"explicit bit 0", *c.IPTables.MasqueradeBit, int32(0)},
		{"explicit false", *c.IPTables.LocalhostNodePorts, false},
		{"sync", c.IPTables.SyncPeriod.Duration, time.Minute},
		{"ipvs min", c.IPVS.MinSyncPeriod.Duration, 5 * time.Second},
		{"explicit oom 0", *c.OOMScoreAdj, int32(0)},
		{"explicit maxPerCore 0", *c.Conntrack.MaxPerCore, int32(0)},
		{"explicit established 0", c.Conntrack.TCPEstablishedTimeout.Duration, time.Duration(0)},
		{"detectLocalMode", c.DetectLocalMode, LocalModeNodeCIDR},
		{"configSyncPeriod", c.ConfigSyncPeriod.Duration, time.Minute},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestDefaultsBindAddresses(t *testing.T) {
	tests := []struct {
		name                     string
		bind, healthz, metrics   string
		wantHealthz, wantMetrics string
	}{
		{"IPv4 bind", "10.1.2.3", "", "", "0.0.0.0:10256", "127.0.0.1:10249"},
		{"IPv6 bind", "fd00::1", "", "", "[::]:10256", "[::1]:10249"},
		{"IPv4-mapped bind counts as IPv4", "::ffff:10.1.2.3", "", "", "0.0.0.0:10256", "127.0.0.1:10249"},
		{"port appended to IPv4", "", "10.0.0.1", "10.0.0.2", "10.0.0.1:10256", "10.0.0.2:10249"},
		{"port appended to IPv6", "", "fd00::1", "::1", "[fd00::1]:10256", "[::1]:10249"},
		{"port kept", "", "10.0.0.1:1", "[::1]:2", "10.0.0.1:1", "[::1]:2"},
		{"invalid left for validation", "", "nonsense", "", "nonsense", "127.0.0.1:10249"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &v1alpha1.KubeProxyConfiguration{BindAddress: tt.bind, HealthzBindAddress: tt.healthz, MetricsBindAddress: tt.metrics}
			Defaults(c)
			if c.HealthzBindAddress != tt.wantHealthz || c.MetricsBindAddress != tt.wantMetrics {
				t.Errorf("healthz %q metrics %q, want %q %q", c.HealthzBindAddress, c.MetricsBindAddress, tt.wantHealthz, tt.wantMetrics)
			}
		})
	}
}

func TestDefaultsIdempotent(t *testing.T) {
	once := defaulted()
	twice := once.DeepCopy()
	Defaults(twice)
	a, _ := MarshalYAML(once)
	b, _ := MarshalYAML(twice)
	if string(a) != string(b) {
		t.Errorf("Defaults is not idempotent:\n%s\n---\n%s", a, b)
	}
}
