package config

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func newFlagSet(t *testing.T) (*Flags, *pflag.FlagSet) {
	t.Helper()
	f := &Flags{}
	fs := pflag.NewFlagSet("kproxy", pflag.ContinueOnError)
	f.AddTo(fs)
	return f, fs
}

func parseArgs(t *testing.T, args ...string) (*Flags, *pflag.FlagSet) {
	t.Helper()
	f, fs := newFlagSet(t)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return f, fs
}

func TestAddToRegistersKubeProxyFlags(t *testing.T) {
	_, fs := newFlagSet(t)
	names := []string{
		"config", "write-config-to", "cleanup", "init-only", "kubeconfig", "master", "kube-api-content-type",
		"kube-api-qps", "kube-api-burst", "hostname-override", "bind-address", "healthz-bind-address",
		"metrics-bind-address", "bind-address-hard-fail", "profiling", "show-hidden-metrics-for-version", "proxy-mode",
		"iptables-masquerade-bit", "masquerade-all", "iptables-localhost-nodeports", "iptables-sync-period",
		"iptables-min-sync-period", "ipvs-sync-period", "ipvs-min-sync-period", "ipvs-scheduler",
		"ipvs-exclude-cidrs", "ipvs-strict-arp", "ipvs-tcp-timeout", "ipvs-tcpfin-timeout", "ipvs-udp-timeout",
		"detect-local-mode", "pod-bridge-interface", "pod-interface-name-prefix", "cluster-cidr",
		"nodeport-addresses", "oom-score-adj", "conntrack-max-per-core", "conntrack-min",
		"conntrack-tcp-timeout-established", "conntrack-tcp-timeout-close-wait", "conntrack-tcp-be-liberal",
		"conntrack-udp-timeout", "conntrack-udp-timeout-stream", "config-sync-period", "feature-gates",
		"healthz-port", "metrics-port", "proxy-port-range", "manifests", "dry-run", "once", "version",
	}
	for _, n := range names {
		if fs.Lookup(n) == nil {
			t.Errorf("flag --%s not registered", n)
		}
	}
	for _, n := range []string{"v", "vmodule"} {
		if fs.Lookup(n) != nil {
			t.Errorf("flag --%s must be left to klog", n)
		}
	}
	for _, n := range []string{"healthz-port", "metrics-port", "proxy-port-range"} {
		if fs.Lookup(n).Deprecated == "" {
			t.Errorf("--%s should be marked deprecated", n)
		}
	}
}

func TestAddToDefaultsAndHelp(t *testing.T) {
	_, fs := newFlagSet(t)
	defaults := map[string]string{
		"iptables-sync-period":              "30s",
		"iptables-min-sync-period":          "1s",
		"ipvs-sync-period":                  "30s",
		"ipvs-min-sync-period":              "0s",
		"iptables-masquerade-bit":           "14",
		"iptables-localhost-nodeports":      "true",
		"oom-score-adj":                     "-999",
		"conntrack-max-per-core":            "32768",
		"conntrack-min":                     "131072",
		"conntrack-tcp-timeout-established": "24h0m0s",
		"conntrack-tcp-timeout-close-wait":  "1h0m0s",
		"config-sync-period":                "15m0s",
		"kube-api-qps":                      "5",
		"kube-api-burst":                    "10",
		"kube-api-content-type":             "application/vnd.kubernetes.protobuf",
		"bind-address":                      "0.0.0.0",
		"healthz-bind-address":              "0.0.0.0:10256",
		"metrics-bind-address":              "127.0.0.1:10249",
		"healthz-port":                      "10256",
		"metrics-port":                      "10249",
	}
	for name, want := range defaults {
		if got := fs.Lookup(name).DefValue; got != want {
			t.Errorf("--%s default = %q, want %q", name, got, want)
		}
	}
	help := map[string]string{
		"config":                  "The path to the configuration file.",
		"iptables-masquerade-bit": "If using the iptables or ipvs proxy mode, the bit of the fwmark space to mark packets requiring SNAT with.  Must be within the range [0, 31].",
		"cluster-cidr":            "This parameter is ignored if a config file is specified by --config.",
		"hostname-override":       "If non-empty, will be used as the name of the Node that kube-proxy is running on.",
		"conntrack-min":           "Minimum number of conntrack entries to allocate, regardless of conntrack-max-per-core",
	}
	for name, want := range help {
		if got := fs.Lookup(name).Usage; !strings.Contains(got, want) {
			t.Errorf("--%s usage %q lacks %q", name, got, want)
		}
	}
}

func TestFeatureGatesFlag(t *testing.T) {
	f, _ := parseArgs(t, "--feature-gates=A=true, B=false", "--feature-gates", "C=true,A=false")
	want := map[string]bool{"A": false, "B": false, "C": true}
	if len(f.FeatureGates) != len(want) {
		t.Fatalf("FeatureGates = %v, want %v", f.FeatureGates, want)
	}
	for k, v := range want {
		if got, ok := f.FeatureGates[k]; !ok || got != v {
			t.Errorf("gate %s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	for _, bad := range []string{"--feature-gates=A", "--feature-gates=A=maybe"} {
		_, fs := newFlagSet(t)
		if err := fs.Parse([]string{bad}); err == nil {
			t.Errorf("parse %s succeeded, want error", bad)
		}
	}
}
