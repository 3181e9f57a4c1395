package config

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kube-proxy/config/v1alpha1"
)

type cfgMod func(*v1alpha1.KubeProxyConfiguration)

// defaulted builds a defaulted configuration with mods applied afterwards.
func defaulted(mods ...cfgMod) *v1alpha1.KubeProxyConfiguration {
	c := &v1alpha1.KubeProxyConfiguration{}
	Defaults(c)
	for _, m := range mods {
		m(c)
	}
	return c
}

func d(s string) metav1.Duration {
	v, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return metav1.Duration{Duration: v}
}

func withMode(m v1alpha1.ProxyMode) cfgMod {
	return func(c *v1alpha1.KubeProxyConfiguration) { c.Mode = m }
}

func TestValidateAcceptsValid(t *testing.T) {
	tests := []struct {
		name string
		mods []cfgMod
	}{
		{"defaults", nil},
		{"ipvs defaults", []cfgMod{withMode(ModeIPVS)}},
		{"empty mode means iptables", []cfgMod{withMode("")}},
		{"min equal to sync", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.IPTables.MinSyncPeriod = d("30s") }}},
		{"zero min sync", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.IPTables.MinSyncPeriod = d("0s") }}},
		{"masqueradeBit 0 and 31", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.IPTables.MasqueradeBit = ptrTo(int32(31)) }}},
		{"dual-stack clusterCIDR", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.ClusterCIDR = "fd00::/48, 10.0.0.0/8" }}},
		{"disabled servers", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.HealthzBindAddress, c.MetricsBindAddress = "", "" }}},
		{"IPv6 servers", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.HealthzBindAddress = "[::]:10256" }}},
		{"nodePortAddresses keywords and CIDRs", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) {
			c.NodePortAddresses = []string{"primary", "localhost", "all", "10.0.0.0/8", "fd00::/64"}
		}}},
		{"bridge mode with interface", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) {
			c.DetectLocalMode, c.DetectLocal.BridgeInterface = LocalModeBridgeInterface, "cbr0"
		}}},
		{"prefix mode with prefix", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) {
			c.DetectLocalMode, c.DetectLocal.InterfaceNamePrefix = LocalModeInterfaceNamePrefix, "veth"
		}}},
		{"NodeCIDR needs nothing", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.DetectLocalMode = LocalModeNodeCIDR }}},
		{"every ipvs scheduler", []cfgMod{withMode(ModeIPVS), func(c *v1alpha1.KubeProxyConfiguration) { c.IPVS.Scheduler = "mh" }}},
		{"ipvs section ignored in iptables mode", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) {
			c.IPVS.Scheduler, c.IPVS.ExcludeCIDRs, c.IPVS.SyncPeriod = "bogus", []string{"x"}, d("0s")
		}}},
		{"port ranges", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.PortRange = "30000-32767" }}},
		{"port range base+size", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.PortRange = "30000+100" }}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Validate(defaulted(tt.mods...)); err != nil {
				t.Fatalf("Validate = %v, want nil", err)
			}
		})
	}
}

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		name string
		mods []cfgMod
		want string
	}{
		{"unknown mode", []cfgMod{withMode("userspace")},
			`mode: Unsupported value: "userspace": supported values: "iptables", "ipvs", "nftables"`},
		{"nftables masqueradeBit", []cfgMod{withMode(ModeNFTables), func(c *v1alpha1.KubeProxyConfiguration) { c.NFTables.MasqueradeBit = ptrTo(int32(40)) }},
			`nftables.masqueradeBit: Invalid value: 40: must be within [0, 31]`},
		{"nftables syncPeriod zero", []cfgMod{withMode(ModeNFTables), func(c *v1alpha1.KubeProxyConfiguration) {
			c.NFTables.SyncPeriod, c.NFTables.MinSyncPeriod = d("0s"), d("0s")
		}},
			`nftables.syncPeriod: Invalid value: "0s": must be greater than 0`},
		{"masqueradeBit 32", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.IPTables.MasqueradeBit = ptrTo(int32(32)) }},
			`iptables.masqueradeBit: Invalid value: 32: must be within [0, 31]`},
		{"masqueradeBit -1", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.IPTables.MasqueradeBit = ptrTo(int32(-1)) }},
			`iptables.masqueradeBit: Invalid value: -1: must be within [0, 31]`},
		{"iptables syncPeriod zero", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) {
			c.IPTables.SyncPeriod, c.IPTables.MinSyncPeriod = d("0s"), d("0s")
		}},
			`iptables.syncPeriod: Invalid value: "0s": must be greater than 0`},
		{"iptables minSyncPeriod negative", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.IPTables.MinSyncPeriod = d("-1s") }},
			`iptables.minSyncPeriod: Invalid value: "-1s": must be greater than or equal to 0`},
		{"iptables min above sync", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.IPTables.MinSyncPeriod = d("1m") }},
			`iptables.syncPeriod: Invalid value: "30s": must be greater than or equal to iptables.minSyncPeriod (1m0s)`},
		{"ipvs min above sync", []cfgMod{withMode(ModeIPVS), func(c *v1alpha1.KubeProxyConfiguration) { c.IPVS.MinSyncPeriod = d("31s") }},
			`ipvs.syncPeriod: Invalid value: "30s": must be greater than or equal to ipvs.minSyncPeriod (31s)`},
		{"ipvs syncPeriod negative", []cfgMod{withMode(ModeIPVS), func(c *v1alpha1.KubeProxyConfiguration) { c.IPVS.SyncPeriod = d("-5s") }},
			`ipvs.syncPeriod: Invalid value: "-5s": must be greater than 0`},
		{"ipvs scheduler", []cfgMod{withMode(ModeIPVS), func(c *v1alpha1.KubeProxyConfiguration) { c.IPVS.Scheduler = "fifo" }},
			`ipvs.scheduler: Unsupported value: "fifo": supported values: "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "sh", "dh", "sed", "nq", "mh"`},
		{"ipvs excludeCIDRs", []cfgMod{withMode(ModeIPVS), func(c *v1alpha1.KubeProxyConfiguration) { c.IPVS.ExcludeCIDRs = []string{"10.0.0.0/8", "10.1.2.3"} }},
			`ipvs.excludeCIDRs[1]: Invalid value: "10.1.2.3": must be a valid CIDR`},
		{"ipvs tcpTimeout", []cfgMod{withMode(ModeIPVS), func(c *v1alpha1.KubeProxyConfiguration) { c.IPVS.TCPTimeout = d("-1s") }},
			`ipvs.tcpTimeout: Invalid value: "-1s": must be greater than or equal to 0`},
		{"ipvs tcpFinTimeout", []cfgMod{withMode(ModeIPVS), func(c *v1alpha1.KubeProxyConfiguration) { c.IPVS.TCPFinTimeout = d("-1s") }},
			`ipvs.tcpFinTimeout: Invalid value: "-1s"`},
		{"ipvs udpTimeout", []cfgMod{withMode(ModeIPVS), func(c *v1alpha1.KubeProxyConfiguration) { c.IPVS.UDPTimeout = d("-1s") }},
			`ipvs.udpTimeout: Invalid value: "-1s"`},
		{"conntrack maxPerCore", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.Conntrack.MaxPerCore = ptrTo(int32(-1)) }},
			`conntrack.maxPerCore: Invalid value: -1: must be greater than or equal to 0`},
		{"conntrack min", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.Conntrack.Min = ptrTo(int32(-1)) }},
			`conntrack.min: Invalid value: -1`},
		{"conntrack established", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.Conntrack.TCPEstablishedTimeout = ptrTo(d("-1h")) }},
			`conntrack.tcpEstablishedTimeout: Invalid value: "-1h0m0s"`},
		{"conntrack close wait", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.Conntrack.TCPCloseWaitTimeout = ptrTo(d("-1h")) }},
			`conntrack.tcpCloseWaitTimeout: Invalid value: "-1h0m0s"`},
		{"conntrack udp", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.Conntrack.UDPTimeout = d("-1s") }},
			`conntrack.udpTimeout: Invalid value: "-1s"`},
		{"conntrack udp stream", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.Conntrack.UDPStreamTimeout = d("-1s") }},
			`conntrack.udpStreamTimeout: Invalid value: "-1s"`},
		{"configSyncPeriod", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.ConfigSyncPeriod = d("0s") }},
			`configSyncPeriod: Invalid value: "0s": must be greater than 0`},
		{"bindAddress", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.BindAddress = "node1" }},
			`bindAddress: Invalid value: "node1": must be a valid IP address`},
		{"healthz without port", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.HealthzBindAddress = "localhost" }},
			`healthzBindAddress: Invalid value: "localhost": must be IP:port`},
		{"healthz hostname", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.HealthzBindAddress = "localhost:10256" }},
			`healthzBindAddress: Invalid value: "localhost:10256": must be IP:port with a valid IP`},
		{"metrics port range", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.MetricsBindAddress = "127.0.0.1:70000" }},
			`metricsBindAddress: Invalid value: "127.0.0.1:70000": must be IP:port with a port within [1, 65535]`},
		{"clusterCIDR invalid", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.ClusterCIDR = "10.0.0.0/33" }},
			`clusterCIDR: Invalid value: "10.0.0.0/33": must be a comma-separated list of valid CIDRs`},
		{"clusterCIDR same family twice", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.ClusterCIDR = "10.0.0.0/8,192.168.0.0/16" }},
			`clusterCIDR: Invalid value: "10.0.0.0/8,192.168.0.0/16": must hold at most one CIDR per IP family`},
		{"clusterCIDR three", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.ClusterCIDR = "10.0.0.0/8,fd00::/48,fd01::/48" }},
			`must hold at most one CIDR per IP family`},
		{"nodePortAddresses", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.NodePortAddresses = []string{"10.0.0.0/8", "Primary"} }},
			`nodePortAddresses[1]: Invalid value: "Primary": must be a valid CIDR or one of "primary", "localhost", "all"`},
		{"oomScoreAdj high", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.OOMScoreAdj = ptrTo(int32(1001)) }},
			`oomScoreAdj: Invalid value: 1001: must be within [-1000, 1000]`},
		{"oomScoreAdj low", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.OOMScoreAdj = ptrTo(int32(-1001)) }},
			`oomScoreAdj: Invalid value: -1001`},
		{"detectLocalMode", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.DetectLocalMode = "PodCIDR" }},
			`detectLocalMode: Unsupported value: "PodCIDR": supported values: "ClusterCIDR", "NodeCIDR", "BridgeInterface", "InterfaceNamePrefix"`},
		{"bridge without interface", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.DetectLocalMode = LocalModeBridgeInterface }},
			`detectLocal.bridgeInterface: Required value: must be set when detectLocalMode is BridgeInterface`},
		{"prefix without prefix", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) {
			c.DetectLocalMode, c.DetectLocal.InterfaceNamePrefix = LocalModeInterfaceNamePrefix, "  "
		}}, `detectLocal.interfaceNamePrefix: Required value`},
		{"burst", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.ClientConnection.Burst = -1 }},
			`clientConnection.burst: Invalid value: -1`},
		{"portRange", []cfgMod{func(c *v1alpha1.KubeProxyConfiguration) { c.PortRange = "2000-300" }},
			`portRange: Invalid value: "2000-300"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := ValidateFields(defaulted(tt.mods...))
			if len(errs) != 1 {
				t.Fatalf("want exactly one error containing %q, got %d: %v", tt.want, len(errs), errs)
			}
			if got := errs[0].Error(); !strings.Contains(got, tt.want) {
				t.Errorf("error = %q\nwant it to contain %q", got, tt.want)
			}
		})
	}
}

func TestValidateReportsAllErrors(t *testing.T) {
	cfg := defaulted(func(c *v1alpha1.KubeProxyConfiguration) {
		c.IPTables.MasqueradeBit = ptrTo(int32(40))
		c.OOMScoreAdj = ptrTo(int32(5000))
		c.ClusterCIDR = "bogus"
	})
	err := Validate(cfg)
	if err == nil {
		t.Fatal("Validate = nil, want errors")
	}
	for _, want := range []string{"iptables.masqueradeBit", "oomScoreAdj", "clusterCIDR"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("aggregate error %q lacks %q", err, want)
		}
	}
}
