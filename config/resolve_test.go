package config

import (
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

func fixedHostname(name string) func() (string, error) {
	return func() (string, error) { return name, nil }
}

func resolveArgs(t *testing.T, args ...string) (*Config, error) {
	t.Helper()
	f, fs := parseArgs(t, args...)
	return resolve(f, fs, fixedHostname(" Test-Host.Example "))
}

func mustResolve(t *testing.T, args ...string) *Config {
	t.Helper()
	c, err := resolveArgs(t, args...)
	if err != nil {
		t.Fatalf("resolve %v: %v", args, err)
	}
	return c
}

func TestResolveDefaultsWithoutFlags(t *testing.T) {
	c := mustResolve(t)
	checks := []struct {
		name      string
		got, want any
	}{
		{"mode", c.Mode, ModeIPTables},
		{"node name lowercased and trimmed", c.NodeName, "test-host.example"},
		{"sync", c.SyncPeriod, 30 * time.Second},
		{"min sync", c.MinSyncPeriod, time.Second},
		{"bit", c.MasqueradeBit, 14},
		{"mark", c.MasqueradeMark, "0x00004000"},
		{"localhost nodeports", c.LocalhostNodePorts, true},
		{"healthz", c.HealthzBindAddress, "0.0.0.0:10256"},
		{"metrics", c.MetricsBindAddress, "127.0.0.1:10249"},
		{"bind", c.BindAddress, netip.MustParseAddr("0.0.0.0")},
		{"configSync", c.ConfigSyncPeriod, 15 * time.Minute},
		{"qps", c.QPS, float32(5)},
		{"burst", c.Burst, 10},
		{"content type", c.ContentType, "application/vnd.kubernetes.protobuf"},
		{"scheduler", c.IPVS.Scheduler, "rr"},
		{"conntrack max", c.Conntrack.MaxPerCore, int32(32768)},
		{"conntrack established", c.Conntrack.TCPEstablishedTimeout, 24 * time.Hour},
		{"oom", c.OOMScoreAdj, int32(-999)},
		{"nodeport all", c.NodePortAddresses.All, true},
		{"detect local", c.DetectLocalMode, LocalModeClusterCIDR},
		{"versioned kept", c.Versioned != nil && c.Versioned.Mode == ModeIPTables, true},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestResolveFlagsWithoutConfig(t *testing.T) {
	c := mustResolve(t,
		"--proxy-mode=ipvs", "--ipvs-sync-period=1m", "--ipvs-min-sync-period=5s", "--iptables-sync-period=2m",
		"--ipvs-scheduler=sh", "--ipvs-exclude-cidrs=10.0.0.0/8,fd00::/64", "--ipvs-strict-arp", "--ipvs-tcp-timeout=10m",
		"--cluster-cidr=10.244.0.0/16,fd00:10:244::/56", "--nodeport-addresses=primary,192.168.0.0/16",
		"--masquerade-all", "--iptables-masquerade-bit=15", "--oom-score-adj=-500", "--conntrack-max-per-core=0",
		"--conntrack-tcp-be-liberal", "--kubeconfig=/k.conf", "--master=https://api:6443", "--kube-api-qps=50",
		"--kube-api-burst=100", "--hostname-override=Node-A", "--bind-address=10.0.0.5", "--config-sync-period=1m",
		"--feature-gates=Foo=true", "--manifests=/m", "--dry-run", "--once", "--metrics-bind-address=0.0.0.0",
	)
	checks := []struct {
		name      string
		got, want any
	}{
		{"mode", c.Mode, ModeIPVS},
		{"ipvs sync used in ipvs mode", c.SyncPeriod, time.Minute},
		{"ipvs min sync used", c.MinSyncPeriod, 5 * time.Second},
		{"iptables section still recorded", c.Versioned.IPTables.SyncPeriod.Duration, 2 * time.Minute},
		{"scheduler", c.IPVS.Scheduler, "sh"},
		{"strict arp", c.IPVS.StrictARP, true},
		{"tcp timeout", c.IPVS.TCPTimeout, 10 * time.Minute},
		{"exclude cidrs", len(c.IPVS.ExcludeCIDRs), 2},
		{"cluster cidrs", len(c.ClusterCIDRs), 2},
		{"masquerade all", c.MasqueradeAll, true},
		{"mark bit 15", c.MasqueradeMark, "0x00008000"},
		{"oom", c.OOMScoreAdj, int32(-500)},
		{"explicit 0 maxPerCore", c.Conntrack.MaxPerCore, int32(0)},
		{"be liberal", c.Conntrack.TCPBeLiberal, true},
		{"kubeconfig", c.Kubeconfig, "/k.conf"},
		{"master", c.Master, "https://api:6443"},
		{"qps", c.QPS, float32(50)},
		{"burst", c.Burst, 100},
		{"node name", c.NodeName, "node-a"},
		{"bind", c.BindAddress, netip.MustParseAddr("10.0.0.5")},
		{"config sync", c.ConfigSyncPeriod, time.Minute},
		{"feature gate", c.FeatureGates["Foo"], true},
		{"manifests", c.Manifests, "/m"},
		{"dry run", c.DryRun, true},
		{"once", c.Once, true},
		{"metrics port appended", c.MetricsBindAddress, "0.0.0.0:10249"},
		{"nothing ignored", len(c.IgnoredFlags), 0},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	m := c.NodePortAddresses.ForFamily(v1.IPv4Protocol, addrs("10.0.0.5"))
	if !slices.Equal(m.Prefixes, prefixes("192.168.0.0/16", "10.0.0.5/32")) {
		t.Errorf("nodeport IPv4 match = %+v", m)
	}
}

func TestResolveIPTablesSyncFlags(t *testing.T) {
	c := mustResolve(t, "--iptables-sync-period=10s", "--iptables-min-sync-period=0", "--ipvs-sync-period=1m")
	if c.SyncPeriod != 10*time.Second || c.MinSyncPeriod != 0 {
		t.Errorf("iptables mode sync = %v/%v, want 10s/0s (explicit 0 is not re-defaulted)", c.SyncPeriod, c.MinSyncPeriod)
	}
}

func TestResolveConfigFileIgnoresMappedFlags(t *testing.T) {
	c := mustResolve(t, "--config=testdata/kubeadm-config.conf",
		"--proxy-mode=ipvs", "--iptables-sync-period=5s", "--cluster-cidr=10.0.0.0/8", "--kubeconfig=/flag.conf",
		"--healthz-port=0", "--hostname-override=Flag-Node", "--master=https://flag:6443", "--cleanup")
	checks := []struct {
		name      string
		got, want any
	}{
		{"mode from file", c.Mode, ModeIPTables},
		{"sync from file defaults", c.SyncPeriod, 30 * time.Second},
		{"cluster cidr from file", c.ClusterCIDRs[0], netip.MustParsePrefix("10.244.0.0/16")},
		{"kubeconfig from file", c.Kubeconfig, "/var/lib/kube-proxy/kubeconfig.conf"},
		{"deprecated port ignored", c.HealthzBindAddress, "0.0.0.0:10256"},
		{"hostname-override wins over file", c.NodeName, "flag-node"},
		{"hostname-override recorded", c.Versioned.HostnameOverride, "flag-node"},
		{"master honoured", c.Master, "https://flag:6443"},
		{"cleanup honoured", c.Cleanup, true},
		{"config file recorded", c.ConfigFile, "testdata/kubeadm-config.conf"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	wantIgnored := []string{"kubeconfig", "proxy-mode", "iptables-sync-period", "cluster-cidr", "healthz-port"}
	if !slices.Equal(c.IgnoredFlags, wantIgnored) {
		t.Errorf("IgnoredFlags = %v, want %v", c.IgnoredFlags, wantIgnored)
	}
}

func TestResolveConfigFileHostnameFromFile(t *testing.T) {
	c := mustResolve(t, "--config=testdata/ipvs-dualstack.yaml")
	if c.NodeName != "node-from-file" {
		t.Errorf("NodeName = %q, want the file's hostnameOverride lowercased", c.NodeName)
	}
	if c.Mode != ModeIPVS || c.SyncPeriod != 45*time.Second || c.MinSyncPeriod != 2*time.Second {
		t.Errorf("ipvs mode periods = %v %v/%v", c.Mode, c.SyncPeriod, c.MinSyncPeriod)
	}
	if !slices.Equal(c.ClusterCIDRs, prefixes("10.244.0.0/16", "fd00:10:244::/56")) {
		t.Errorf("ClusterCIDRs = %v", c.ClusterCIDRs)
	}
	if c.IPVS.Scheduler != "wrr" || !slices.Equal(c.IPVS.ExcludeCIDRs, prefixes("192.168.10.0/24")) {
		t.Errorf("IPVS = %+v", c.IPVS)
	}
	m := c.NodePortAddresses.ForFamily(v1.IPv6Protocol, addrs("fd00::5"))
	if !slices.Equal(m.Prefixes, prefixes("fd00::5/128")) {
		t.Errorf("IPv6 nodeport match = %+v", m)
	}
	if !c.FeatureGates["SomeGate"] {
		t.Errorf("feature gates from file not kept: %v", c.FeatureGates)
	}
}

func TestResolveDeprecatedPorts(t *testing.T) {
	tests := []struct {
		name                     string
		args                     []string
		wantHealthz, wantMetrics string
	}{
		{"zero disables", []string{"--healthz-port=0", "--metrics-port=0"}, "", ""},
		{"port replaces default port", []string{"--healthz-port=1234", "--metrics-port=4321"}, "0.0.0.0:1234", "127.0.0.1:4321"},
		{"port combines with bare IP", []string{"--healthz-bind-address=10.0.0.1", "--healthz-port=99"}, "10.0.0.1:99", "127.0.0.1:10249"},
		{"bare IPv6 gets default port", []string{"--metrics-bind-address=::1"}, "0.0.0.0:10256", "[::1]:10249"},
		{"empty address disables", []string{"--metrics-bind-address="}, "0.0.0.0:10256", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustResolve(t, tt.args...)
			if c.HealthzBindAddress != tt.wantHealthz || c.MetricsBindAddress != tt.wantMetrics {
				t.Errorf("healthz %q metrics %q, want %q %q", c.HealthzBindAddress, c.MetricsBindAddress, tt.wantHealthz, tt.wantMetrics)
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"validation error with field path", []string{"--iptables-masquerade-bit=32"}, "iptables.masqueradeBit: Invalid value: 32: must be within [0, 31]"},
		{"blank hostname override", []string{"--hostname-override=  "}, "empty hostname-override is invalid"},
		{"bad bind address", []string{"--bind-address=node"}, "bindAddress: Invalid value"},
		{"strict file", []string{"--config=testdata/does-not-exist.conf"}, "read config file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := resolveArgs(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestResolveNFTablesMode(t *testing.T) {
	c := mustResolve(t, "--proxy-mode=nftables", "--iptables-sync-period=10s", "--iptables-masquerade-bit=15")
	if c.Mode != ModeNFTables || c.SyncPeriod != 10*time.Second || c.MasqueradeMark != "0x00008000" {
		t.Errorf("mode %q sync %v mark %s; want nftables, 10s (the flags feed the nftables section), 0x00008000",
			c.Mode, c.SyncPeriod, c.MasqueradeMark)
	}
	if got := c.NodePortAddresses.String(); got != NodePortAddressesPrimary {
		t.Errorf("nodePortAddresses = %q, want %q (nftables mode's default)", got, NodePortAddressesPrimary)
	}
	if c := mustResolve(t, "--proxy-mode=nftables", "--nodeport-addresses=10.0.0.0/8"); c.NodePortAddresses.String() != "10.0.0.0/8" {
		t.Errorf("explicit nodePortAddresses replaced: %q", c.NodePortAddresses.String())
	}
	dir := t.TempDir()
	file := dir + "/nft.conf"
	conf := "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: nftables\n" +
		"nftables:\n  masqueradeAll: true\n  syncPeriod: 45s\n  minSyncPeriod: 2s\n"
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	c = mustResolve(t, "--config="+file)
	if c.Mode != ModeNFTables || !c.MasqueradeAll || c.SyncPeriod != 45*time.Second || c.MinSyncPeriod != 2*time.Second {
		t.Errorf("from file: mode %q masqueradeAll %v sync %v/%v", c.Mode, c.MasqueradeAll, c.SyncPeriod, c.MinSyncPeriod)
	}
}

func TestResolveEmptyProxyModeMeansIPTables(t *testing.T) {
	if c := mustResolve(t, "--proxy-mode="); c.Mode != ModeIPTables {
		t.Errorf("Mode = %q, want iptables", c.Mode)
	}
}

func TestResolveHostnameErrors(t *testing.T) {
	f, fs := parseArgs(t)
	if _, err := resolve(f, fs, fixedHostname("   ")); err == nil || !strings.Contains(err.Error(), "empty hostname") {
		t.Errorf("blank hostname: err = %v", err)
	}
	boom := errors.New("boom")
	if _, err := resolve(f, fs, func() (string, error) { return "", boom }); !errors.Is(err, boom) {
		t.Errorf("hostname failure not wrapped: %v", err)
	}
}
