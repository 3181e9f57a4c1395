package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kube-proxy/config/v1alpha1"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const kindKubeProxyConfiguration = "KubeProxyConfiguration"

// LoadFile reads and strictly decodes a KubeProxyConfiguration file (YAML or
// JSON). It does not apply defaults.
func LoadFile(path string) (*v1alpha1.KubeProxyConfiguration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	cfg, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return cfg, nil
}

// Decode strictly decodes one KubeProxyConfiguration document. Unknown and
// duplicate fields are errors naming the field path (for example
// `unknown field "iptables.sincPeriod"`); apiVersion and kind must be
// kubeproxy.config.k8s.io/v1alpha1 KubeProxyConfiguration.
func Decode(data []byte) (*v1alpha1.KubeProxyConfiguration, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("empty configuration")
	}
	// YAMLToJSONStrict rejects duplicate keys at the YAML level.
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	if err := checkTypeMeta(js); err != nil {
		return nil, err
	}
	cfg := &v1alpha1.KubeProxyConfiguration{}
	strictErrs, err := sigsjson.UnmarshalStrict(js, cfg)
	if err != nil {
		return nil, fmt.Errorf("decode KubeProxyConfiguration: %w", err)
	}
	if len(strictErrs) > 0 {
		msgs := make([]string, len(strictErrs))
		for i, e := range strictErrs {
			msgs[i] = e.Error()
		}
		// One line, so that a log line or a crash-loop message shows all of them.
		return nil, fmt.Errorf("strict decoding KubeProxyConfiguration: %s", strings.Join(msgs, "; "))
	}
	return cfg, nil
}

func checkTypeMeta(js []byte) error {
	var tm metav1.TypeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		return fmt.Errorf("read apiVersion/kind: %w", err)
	}
	want := v1alpha1.SchemeGroupVersion.String()
	switch {
	case tm.APIVersion == "" || tm.Kind == "":
		return fmt.Errorf("apiVersion and kind must be set (want apiVersion %q, kind %q)", want, kindKubeProxyConfiguration)
	case tm.APIVersion != want:
		return fmt.Errorf("unsupported apiVersion %q (want %q)", tm.APIVersion, want)
	case tm.Kind != kindKubeProxyConfiguration:
		return fmt.Errorf("unsupported kind %q (want %q)", tm.Kind, kindKubeProxyConfiguration)
	}
	return nil
}

// MarshalYAML renders cfg as a v1alpha1 YAML document, with apiVersion and kind set.
func MarshalYAML(cfg *v1alpha1.KubeProxyConfiguration) ([]byte, error) {
	out := cfg.DeepCopy()
	out.TypeMeta = typeMeta()
	data, err := yaml.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("marshal KubeProxyConfiguration: %w", err)
	}
	return data, nil
}

// WriteConfigTo writes cfg as YAML to path (kube-proxy's --write-config-to).
// The file is replaced atomically (a temporary file in the same directory,
// then rename), so a reader never sees half a configuration.
func WriteConfigTo(path string, cfg *v1alpha1.KubeProxyConfiguration) error {
	data, err := MarshalYAML(cfg)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write config %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write config %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write config %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write config %s: %w", path, err)
	}
	return nil
}

// ConfigzJSON renders the /configz body: the effective configuration under
// the key "kubeproxy.config.k8s.io", as v1alpha1 JSON.
func ConfigzJSON(cfg *v1alpha1.KubeProxyConfiguration) ([]byte, error) {
	out := cfg.DeepCopy()
	out.TypeMeta = typeMeta()
	data, err := json.Marshal(map[string]*v1alpha1.KubeProxyConfiguration{v1alpha1.GroupName: out})
	if err != nil {
		return nil, fmt.Errorf("marshal configz: %w", err)
	}
	return data, nil
}
