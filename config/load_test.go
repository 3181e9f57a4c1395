package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/kube-proxy/config/v1alpha1"
)

const header = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.conf")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadFileErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string
		wantErr []string
	}{
		{"unknown nested field names its path", header + "iptables:\n  sincPeriod: 10s\n", []string{`unknown field "iptables.sincPeriod"`}},
		{"unknown top-level field", header + "udpIdleTimeout: 250ms\n", []string{`unknown field "udpIdleTimeout"`}},
		{"field names are case-sensitive", header + "Mode: ipvs\n", []string{`unknown field "Mode"`}},
		{"every unknown field is reported", header + "foo: 1\nconntrack:\n  bar: 2\n", []string{`unknown field "foo"`, `unknown field "conntrack.bar"`}},
		{"duplicate key", header + "mode: ipvs\nmode: iptables\n", []string{`"mode"`}},
		{"wrong apiVersion", "apiVersion: kubeproxy.config.k8s.io/v1alpha2\nkind: KubeProxyConfiguration\n", []string{`unsupported apiVersion "kubeproxy.config.k8s.io/v1alpha2"`}},
		{"wrong kind", "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeletConfiguration\n", []string{`unsupported kind "KubeletConfiguration"`}},
		{"missing kind", "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nmode: ipvs\n", []string{"apiVersion and kind must be set"}},
		{"empty file", "\n", []string{"empty configuration"}},
		{"bad duration", header + "configSyncPeriod: soon\n", []string{"decode KubeProxyConfiguration", "soon"}},
		{"type mismatch", header + "iptables:\n  masqueradeBit: fourteen\n", []string{"decode KubeProxyConfiguration"}},
		{"not YAML", header + "mode: [\n", []string{"parse YAML"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.content)
			_, err := LoadFile(path)
			if err == nil {
				t.Fatal("LoadFile succeeded, want error")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestLoadFileMissing(t *testing.T) {
	if _, err := LoadFile(filepath.Join(t.TempDir(), "nope.conf")); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("LoadFile(missing) error = %v, want a not-exist error", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

func TestLoadKubeadmConfigAndDefault(t *testing.T) {
	cfg, err := LoadFile("testdata/kubeadm-config.conf")
	if err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	if cfg.IPTables.MasqueradeBit != nil || cfg.Conntrack.MaxPerCore != nil || cfg.OOMScoreAdj != nil {
		t.Fatalf("nulls must decode as unset pointers: %+v", cfg)
	}
	Defaults(cfg)
	if err := Validate(cfg); err != nil {
		t.Fatalf("Validate(kubeadm config) = %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"kubeconfig kept", cfg.ClientConnection.Kubeconfig, "/var/lib/kube-proxy/kubeconfig.conf"},
		{"clusterCIDR kept", cfg.ClusterCIDR, "10.244.0.0/16"},
		{"mode", cfg.Mode, ModeIPTables},
		{"null masqueradeBit", *cfg.IPTables.MasqueradeBit, int32(14)},
		{"0s iptables.syncPeriod", cfg.IPTables.SyncPeriod.Duration, 30 * time.Second},
		{"0s iptables.minSyncPeriod", cfg.IPTables.MinSyncPeriod.Duration, time.Second},
		{"0s ipvs.syncPeriod", cfg.IPVS.SyncPeriod.Duration, 30 * time.Second},
		{"0s ipvs.minSyncPeriod stays 0", cfg.IPVS.MinSyncPeriod.Duration, time.Duration(0)},
		{"null localhostNodePorts", *cfg.IPTables.LocalhostNodePorts, true},
		{"empty healthz", cfg.HealthzBindAddress, "0.0.0.0:10256"},
		{"empty metrics", cfg.MetricsBindAddress, "127.0.0.1:10249"},
		{"null oomScoreAdj", *cfg.OOMScoreAdj, int32(-999)},
		{"null maxPerCore", *cfg.Conntrack.MaxPerCore, int32(32768)},
		{"null min", *cfg.Conntrack.Min, int32(131072)},
		{"null tcpEstablishedTimeout", cfg.Conntrack.TCPEstablishedTimeout.Duration, 24 * time.Hour},
		{"null tcpCloseWaitTimeout", cfg.Conntrack.TCPCloseWaitTimeout.Duration, time.Hour},
		{"0s configSyncPeriod", cfg.ConfigSyncPeriod.Duration, 15 * time.Minute},
		{"0 qps", cfg.ClientConnection.QPS, float32(5)},
		{"0 burst", cfg.ClientConnection.Burst, int32(10)},
		{"empty contentType", cfg.ClientConnection.ContentType, "application/vnd.kubernetes.protobuf"},
		{"detectLocalMode", cfg.DetectLocalMode, LocalModeClusterCIDR},
		{"logging flushFrequency", cfg.Logging.FlushFrequency.Duration.Duration, 5 * time.Second},
		{"nodePortAddresses stays unset", len(cfg.NodePortAddresses), 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestLoadHandWrittenFile(t *testing.T) {
	cfg, err := LoadFile("testdata/ipvs-dualstack.yaml")
	if err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	Defaults(cfg)
	if err := Validate(cfg); err != nil {
		t.Fatalf("Validate = %v", err)
	}
	if cfg.HealthzBindAddress != "[::]:10256" || cfg.MetricsBindAddress != "[::1]:10249" {
		t.Errorf("IPv6 bindAddress defaults: healthz %q metrics %q", cfg.HealthzBindAddress, cfg.MetricsBindAddress)
	}
	if *cfg.Conntrack.MaxPerCore != 0 {
		t.Errorf("explicit maxPerCore 0 must stay 0, got %d", *cfg.Conntrack.MaxPerCore)
	}
	if cfg.IPVS.Scheduler != "wrr" || cfg.IPVS.TCPTimeout.Duration != 15*time.Minute {
		t.Errorf("ipvs section not decoded: %+v", cfg.IPVS)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	cfg := &v1alpha1.KubeProxyConfiguration{}
	Defaults(cfg)
	cfg.ClusterCIDR = "10.0.0.0/8"
	path := filepath.Join(t.TempDir(), "out.yaml")
	if err := WriteConfigTo(path, cfg); err != nil {
		t.Fatalf("WriteConfigTo: %v", err)
	}
	back, err := LoadFile(path)
	if err != nil {
		t.Fatalf("written config does not load strictly: %v", err)
	}
	if back.ClusterCIDR != "10.0.0.0/8" || *back.IPTables.MasqueradeBit != 14 || back.Mode != ModeIPTables {
		t.Errorf("round trip lost values: %+v", back)
	}
}

func TestConfigzJSON(t *testing.T) {
	cfg := &v1alpha1.KubeProxyConfiguration{}
	Defaults(cfg)
	cfg.ClusterCIDR = "10.244.0.0/16"
	data, err := ConfigzJSON(cfg)
	if err != nil {
		t.Fatalf("ConfigzJSON: %v", err)
	}
	var body map[string]map[string]any
	if err := json.Unmarshal(data, &body); err != nil {
		t.Fatalf("configz is not a JSON object of objects: %v\n%s", err, data)
	}
	if len(body) != 1 {
		t.Fatalf("configz must have exactly one key, got %v", body)
	}
	inner, ok := body["kubeproxy.config.k8s.io"]
	if !ok {
		t.Fatalf("missing key kubeproxy.config.k8s.io in %s", data)
	}
	want := map[string]any{
		"mode":               "iptables",
		"clusterCIDR":        "10.244.0.0/16",
		"healthzBindAddress": "0.0.0.0:10256",
		"metricsBindAddress": "127.0.0.1:10249",
		"kind":               "KubeProxyConfiguration",
		"apiVersion":         "kubeproxy.config.k8s.io/v1alpha1",
	}
	for k, v := range want {
		if inner[k] != v {
			t.Errorf("configz %s = %v, want %v", k, inner[k], v)
		}
	}
	ipt, _ := inner["iptables"].(map[string]any)
	if ipt["syncPeriod"] != "30s" || ipt["masqueradeBit"] != float64(14) {
		t.Errorf("configz iptables = %v", ipt)
	}
}
