package apiclient

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewClient(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	writeFile(t, kubeconfig, `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}
contexts:
- name: c
  context: {cluster: c, user: u}
current-context: c
users:
- name: u
  user: {token: abc}
`)
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	tests := []struct {
		name    string
		opts    ClientOptions
		wantErr string
	}{
		{"kubeconfig", ClientOptions{Kubeconfig: kubeconfig, QPS: 5, Burst: 10, ContentType: "application/vnd.kubernetes.protobuf", UserAgent: "kproxy"}, ""},
		{"master only", ClientOptions{Master: "https://127.0.0.1:6443"}, ""},
		{"kubeconfig and master", ClientOptions{Kubeconfig: kubeconfig, Master: "https://10.0.0.1:6443"}, ""},
		{"missing kubeconfig", ClientOptions{Kubeconfig: filepath.Join(dir, "absent")}, "absent"},
		{"nothing outside a cluster", ClientOptions{}, "not running in a cluster"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, err := NewClient(tt.opts)
			if tt.wantErr == "" {
				if err != nil || client == nil {
					t.Fatalf("NewClient = %v, %v; want a client", client, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewClient error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
