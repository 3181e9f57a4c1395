package config

import (
	"os"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
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

// TestDeployImagesArePinned keeps the release reproducible: the DaemonSet
// names kproxy's image by a version tag (never :latest or no tag), the same
// tag as kustomization.yaml and the Makefile's IMAGE_TAG, and every base image
// of the Dockerfile is pinned by digest.
func TestDeployImagesArePinned(t *testing.T) {
	var ds appsv1.DaemonSet
	readYAML(t, "../deploy/daemonset.yaml", &ds)
	var kust struct {
		Images []struct {
			Name    string `json:"name"`
			NewTag  string `json:"newTag"`
			Digest  string `json:"digest"`
			NewName string `json:"newName"`
		} `json:"images"`
	}
	readYAML(t, "../deploy/kustomization.yaml", &kust)
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^IMAGE_TAG := (\S+)$`).FindSubmatch(makefile)
	if m == nil {
		t.Fatal("Makefile has no IMAGE_TAG := line")
	}
	release := string(m[1])
	tagRE := regexp.MustCompile(`^v\d+\.\d+\.\d+$`)
	if !tagRE.MatchString(release) {
		t.Fatalf("Makefile IMAGE_TAG %q is not a vX.Y.Z release tag", release)
	}
	containers := ds.Spec.Template.Spec.Containers
	if len(containers) == 0 {
		t.Fatal("DaemonSet has no containers")
	}
	for _, c := range containers {
		name, tag, ok := strings.Cut(c.Image, ":")
		if !ok || tag != release || strings.Contains(name, "@") {
			t.Errorf("container %s image %q: want %s:%s", c.Name, c.Image, name, release)
		}
		found := false
		for _, img := range kust.Images {
			if img.Name == name {
				found = true
				if img.NewTag != release {
					t.Errorf("kustomization.yaml newTag %q for %s, want %s", img.NewTag, name, release)
				}
				if img.Digest != "" && !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(img.Digest) {
					t.Errorf("kustomization.yaml digest %q is not sha256:<64 hex>", img.Digest)
				}
			}
		}
		if !found {
			t.Errorf("kustomization.yaml has no images entry for %s", name)
		}
	}
	docker, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	froms := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllSubmatch(docker, -1)
	if len(froms) == 0 {
		t.Fatal("Dockerfile has no FROM line")
	}
	pinned := regexp.MustCompile(`^[^@\s]+@sha256:[0-9a-f]{64}$`)
	for _, f := range froms {
		if !pinned.Match(f[1]) {
			t.Errorf("Dockerfile base image %s is not pinned by digest", f[1])
		}
	}
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, into); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
}
