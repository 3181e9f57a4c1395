package config

import (
	"os"
	"testing"

	v1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// TestDeployConfigMapConfigIsValid keeps deploy/configmap.yaml's config.conf loadable as kproxy reads it in a cluster.
func TestDeployConfigMapConfigIsValid(t *testing.T) {
	raw, err := os.ReadFile("../deploy/configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm v1.ConfigMap
	if err := yaml.Unmarshal(raw, &cm); err != nil {
		t.Fatalf("parse configmap: %v", err)
	}
	conf, ok := cm.Data["config.conf"]
	if !ok {
		t.Fatal("configmap has no config.conf")
	}
	cfg, err := Decode([]byte(conf))
	if err != nil {
		t.Fatalf("decode config.conf: %v", err)
	}
	Defaults(cfg)
	if err := Validate(cfg); err != nil {
		t.Fatalf("config.conf is invalid: %v", err)
	}
	if cfg.ClientConnection.Kubeconfig != "/var/lib/kproxy/kubeconfig.conf" {
		t.Errorf("kubeconfig path %q does not match the DaemonSet's mount", cfg.ClientConnection.Kubeconfig)
	}
}
