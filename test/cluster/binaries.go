package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Environment variables that override where the binaries come from.
const (
	EnvEtcdBin      = "KPROXY_ETCD_BIN"
	EnvAPIServerBin = "KPROXY_APISERVER_BIN"
)

// Binaries are the programs a cluster runs.
type Binaries struct {
	Etcd      string
	APIServer string
	KubeProxy string // built alongside kube-apiserver; empty when taken from the environment
}

// ResolveBinaries returns the binaries: both from the environment when
// KPROXY_ETCD_BIN and KPROXY_APISERVER_BIN are set, otherwise from
// scripts/cluster-tools.sh, which installs etcd and builds kube-apiserver
// into its cache on first use (minutes), then answers at once.
func ResolveBinaries(ctx context.Context) (Binaries, error) {
	etcd, apiserver := os.Getenv(EnvEtcdBin), os.Getenv(EnvAPIServerBin)
	if etcd != "" && apiserver != "" {
		return Binaries{Etcd: etcd, APIServer: apiserver}, nil
	}
	script, err := toolsScript()
	if err != nil {
		return Binaries{}, err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, script)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return Binaries{}, fmt.Errorf("%s: %w: %s", script, err, lastLines(stderr.String(), 20))
	}
	b, err := parseToolsOutput(stdout.Bytes())
	if err != nil {
		return Binaries{}, fmt.Errorf("%s: %w", script, err)
	}
	if etcd != "" {
		b.Etcd = etcd
	}
	if apiserver != "" {
		b.APIServer = apiserver
	}
	return b, nil
}

// toolsScript finds scripts/cluster-tools.sh from this source file's location
// (tests run with the package directory as working directory, commands from
// anywhere in the repository).
func toolsScript() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if ok {
		p := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "cluster-tools.sh")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find scripts/cluster-tools.sh: %w", err)
	}
	for {
		p := filepath.Join(dir, "scripts", "cluster-tools.sh")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("scripts/cluster-tools.sh not found above the working directory")
		}
		dir = parent
	}
}

// parseToolsOutput reads the script's "name=path" lines.
func parseToolsOutput(out []byte) (Binaries, error) {
	var b Binaries
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		name, path, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		switch name {
		case "etcd":
			b.Etcd = path
		case "kube-apiserver":
			b.APIServer = path
		case "kube-proxy":
			b.KubeProxy = path
		}
	}
	if b.Etcd == "" || b.APIServer == "" {
		return b, fmt.Errorf("output lacks etcd= or kube-apiserver=: %q", out)
	}
	return b, nil
}

// lastLines returns at most n trailing lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
