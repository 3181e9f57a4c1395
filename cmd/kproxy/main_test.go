package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kproxy/kproxy/config"
)

// These tests run the command in-process with --dry-run, which needs no root and touches nothing.

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInvalidConfigExitsWithFieldPath(t *testing.T) {
	tests := []struct {
		name, config, want string
	}{
		{"unknown field", "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\niptables:\n  sincPeriod: 1s\n",
			"iptables.sincPeriod"},
		{"invalid value", "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\niptables:\n  masqueradeBit: 32\n",
			"iptables.masqueradeBit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run([]string{"--config", writeFile(t, "config.conf", tt.config), "--dry-run"}, &stdout, &stderr)
			if code == 0 {
				t.Fatal("exit code 0 for an invalid configuration")
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q does not name %s", stderr.String(), tt.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--version"}, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "kproxy ") {
		t.Fatalf("--version: code %d, output %q", code, stdout.String())
	}
}

func TestDryRunPrintsRulesOfTheManifests(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"--dry-run", "--manifests", "../../deploy/examples/demo", "--hostname-override", "kpx-node",
		"--cluster-cidr", "10.244.0.0/16"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		`-A KUBE-SERVICES -m comment --comment "demo/web:http cluster IP" -m tcp -p tcp -d 10.96.0.10 --dport 80 -j KUBE-SVC-`,
		"-A KUBE-NODEPORTS -m comment --comment \"demo/web:http\" -m tcp -p tcp --dport 30080 -j KUBE-EXT-",
		"--to-destination 10.244.1.11:8080",
		"# kproxy --dry-run: IPv6 iptables-restore --noflush input",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run output lacks %q", want)
		}
	}
}

func TestOnceFailsOnBrokenManifests(t *testing.T) {
	var stdout, stderr bytes.Buffer
	bad := writeFile(t, "bad.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: [x\n")
	if code := run([]string{"--dry-run", "--manifests", bad, "--hostname-override", "n"}, &stdout, &stderr); code == 0 {
		t.Fatal("exit code 0 for unreadable manifests")
	}
}

func TestUnsupportedModeIsAClearError(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"--proxy-mode", "userspace", "--dry-run", "--manifests", "../../deploy/examples/demo"}, &stdout, &stderr)
	if code == 0 {
		t.Fatal("an unknown mode must be refused")
	}
	if !strings.Contains(stderr.String(), "mode") {
		t.Errorf("stderr %q does not say what is wrong", stderr.String())
	}
}

func TestNFTablesDryRunPrintsTransactions(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"--proxy-mode", "nftables", "--dry-run", "--manifests", "../../deploy/examples/demo",
		"--hostname-override", "kpx-node", "--cluster-cidr", "10.244.0.0/16"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"# kproxy --dry-run: IPv4 nft -f input", "# kproxy --dry-run: IPv6 nft -f input",
		"add table ip kube-proxy", "add table ip6 kube-proxy", "demo/web/tcp/http",
		"add rule ip kube-proxy services ip daddr @cluster-ips ip saddr != 10.244.0.0/16 mark set mark or 0x00004000"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q", want)
		}
	}
}

func TestIPVSDryRunPrintsVirtualServers(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"--proxy-mode", "ipvs", "--dry-run", "--manifests", "../../deploy/examples/demo",
		"--hostname-override", "kpx-node", "--cluster-cidr", "10.244.0.0/16"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"10.96.0.10:80", "10.244.1.11:8080", "KUBE-CLUSTER-IP"} {
		if !strings.Contains(out, want) {
			t.Errorf("ipvs dry-run output lacks %q:\n%s", want, out)
		}
	}
}

// TestWriteConfigToWritesTheEffectiveConfigurationAndExits checks kube-proxy's
// --write-config-to: the file holds the file's values, flag overrides and
// defaults combined, loads back as a valid configuration, and kproxy exits 0
// without running (no API server is configured here, so running would fail).
func TestWriteConfigToWritesTheEffectiveConfigurationAndExits(t *testing.T) {
	in := writeFile(t, "config.conf", "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"+
		"mode: ipvs\nclusterCIDR: 10.244.0.0/16\niptables:\n  masqueradeBit: 15\n")
	out := filepath.Join(t.TempDir(), "written.conf")
	var stdout, stderr bytes.Buffer
	code := run([]string{"--config", in, "--hostname-override", "node-a", "--write-config-to", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d: %s", code, stderr.String())
	}
	written, err := config.LoadFile(out)
	if err != nil {
		t.Fatalf("the written file does not load: %v", err)
	}
	if written.Mode != "ipvs" || written.ClusterCIDR != "10.244.0.0/16" || written.HostnameOverride != "node-a" {
		t.Errorf("written mode %q clusterCIDR %q hostnameOverride %q, want ipvs, 10.244.0.0/16, node-a",
			written.Mode, written.ClusterCIDR, written.HostnameOverride)
	}
	if written.IPTables.MasqueradeBit == nil || *written.IPTables.MasqueradeBit != 15 {
		t.Errorf("masqueradeBit %v, want 15 from the file", written.IPTables.MasqueradeBit)
	}
	if written.IPTables.SyncPeriod.Duration != 30*time.Second {
		t.Errorf("iptables.syncPeriod %v, want the default 30s filled in", written.IPTables.SyncPeriod.Duration)
	}
	if stdout.Len() != 0 {
		t.Errorf("nothing but the file should be written, stdout: %q", stdout.String())
	}
}

func TestWriteConfigToRefusesAnInvalidConfiguration(t *testing.T) {
	out := filepath.Join(t.TempDir(), "written.conf")
	var stdout, stderr bytes.Buffer
	code := run([]string{"--proxy-mode", "bogus", "--write-config-to", out}, &stdout, &stderr)
	if code == 0 {
		t.Fatal("exit code 0 for an invalid configuration")
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a file was written for an invalid configuration (stat: %v)", err)
	}
}
