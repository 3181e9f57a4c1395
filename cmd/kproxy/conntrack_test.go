package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"k8s.io/klog/v2"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/proxier/sysctl"
)

// hostTree is a temporary root laid out like /proc and /sys for the host settings.
type hostTree struct {
	t    *testing.T
	root string
}

// newHostTree writes a fresh network namespace's values on a 2-CPU machine.
func newHostTree(t *testing.T) *hostTree {
	h := &hostTree{t: t, root: t.TempDir()}
	h.set(onlineCPUsPath, "0-1")
	h.set(conntrackHashsizePath, "65536")
	h.set(oomScoreAdjPath, "0")
	for name, v := range map[string]string{
		"nf_conntrack_max":                     "65536",
		"nf_conntrack_tcp_timeout_established": "432000",
		"nf_conntrack_tcp_timeout_close_wait":  "60",
		"nf_conntrack_tcp_be_liberal":          "0",
		"nf_conntrack_udp_timeout":             "30",
		"nf_conntrack_udp_timeout_stream":      "120",
	} {
		h.set(sysctlPath(name), v)
	}
	return h
}

func (h *hostTree) set(path, value string) {
	h.t.Helper()
	p := filepath.Join(h.root, path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(value+"\n"), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func (h *hostTree) get(path string) string {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(h.root, path))
	if err != nil {
		h.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// sysctlPath is a net.netfilter sysctl's path in the tree.
func sysctlPath(name string) string { return "proc/sys/" + netfilterSysctlDir + "/" + name }

func (h *hostTree) sysctl(name string) string { return h.get(sysctlPath(name)) }

func (h *hostTree) chmod(path string, mode os.FileMode) {
	h.t.Helper()
	if err := os.Chmod(filepath.Join(h.root, path), mode); err != nil {
		h.t.Fatal(err)
	}
}

func (h *hostTree) remove(path string) {
	h.t.Helper()
	if err := os.Remove(filepath.Join(h.root, path)); err != nil {
		h.t.Fatal(err)
	}
}

func (h *hostTree) host() host {
	return host{sysctls: sysctl.Dir{Root: filepath.Join(h.root, "proc/sys")}, files: rootedFiles{root: h.root}}
}

// logLines records log lines up to verbosity 4.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logger() klog.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, prefix+" "+args)
	}, funcr.Options{Verbosity: 4})
}

func (l *logLines) find(substrs ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		all := true
		for _, s := range substrs {
			all = all && strings.Contains(line, s)
		}
		if all {
			return true
		}
	}
	return false
}

// upstreamDefaults is the conntrack section as defaulted by upstream.
func upstreamDefaults() config.ConntrackConfig {
	return config.ConntrackConfig{
		MaxPerCore: 32768, Min: 131072, TCPEstablishedTimeout: 24 * time.Hour, TCPCloseWaitTimeout: time.Hour,
	}
}

func TestConntrackMax(t *testing.T) {
	tests := []struct {
		name            string
		maxPerCore, min int32
		cpus, want      int
	}{
		{"maxPerCore 0 leaves the limit and ignores min", 0, 131072, 2, 0},
		{"scaled below min gives min", 32768, 131072, 2, 131072},
		{"scaled above min", 32768, 131072, 8, 262144},
		{"no min", 1000, 0, 3, 3000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.ConntrackConfig{MaxPerCore: tt.maxPerCore, Min: tt.min}
			if got := conntrackMax(c, tt.cpus); got != tt.want {
				t.Errorf("conntrackMax = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestCountCPUList(t *testing.T) {
	tests := []struct {
		list    string
		want    int
		wantErr bool
	}{
		{"0", 1, false},
		{"0-1\n", 2, false},
		{"0-3,8-11", 8, false},
		{"0,2,4", 3, false},
		{"", 0, true},
		{"3-1", 0, true},
		{"0-x", 0, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.list), func(t *testing.T) {
			got, err := countCPUList(tt.list)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("countCPUList = %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestApplyConntrack(t *testing.T) {
	tests := []struct {
		name    string
		cfg     func(c *config.ConntrackConfig)
		tree    func(h *hostTree)
		want    map[string]string // sysctl name -> value after apply
		wantLog []string
	}{{
		name: "upstream defaults raise the limit to min and set the TCP timeouts",
		want: map[string]string{
			"nf_conntrack_max": "131072", "nf_conntrack_tcp_timeout_established": "86400",
			"nf_conntrack_tcp_timeout_close_wait": "3600", "nf_conntrack_tcp_be_liberal": "0",
			"nf_conntrack_udp_timeout": "30", "nf_conntrack_udp_timeout_stream": "120",
		},
		wantLog: []string{"Set sysctl", "net.netfilter.nf_conntrack_max"},
	}, {
		name: "maxPerCore times online CPUs",
		cfg:  func(c *config.ConntrackConfig) { c.MaxPerCore = 100000 },
		tree: func(h *hostTree) { h.set(onlineCPUsPath, "0-3") },
		want: map[string]string{"nf_conntrack_max": "400000"},
	}, {
		name: "the limit is only raised",
		tree: func(h *hostTree) { h.set(sysctlPath("nf_conntrack_max"), "1048576") },
		want: map[string]string{"nf_conntrack_max": "1048576"},
	}, {
		name: "maxPerCore 0 leaves a low limit",
		cfg:  func(c *config.ConntrackConfig) { c.MaxPerCore = 0 },
		want: map[string]string{"nf_conntrack_max": "65536"},
	}, {
		name:    "a read-only limit is left to the host",
		tree:    func(h *hostTree) { h.chmod(sysctlPath("nf_conntrack_max"), 0o444) },
		want:    map[string]string{"nf_conntrack_max": "65536", "nf_conntrack_tcp_timeout_established": "86400"},
		wantLog: []string{"left to the host", "net.netfilter.nf_conntrack_max"},
	}, {
		name: "UDP timeouts and tcpBeLiberal",
		cfg: func(c *config.ConntrackConfig) {
			c.UDPTimeout, c.UDPStreamTimeout, c.TCPBeLiberal = 45*time.Second, 150*time.Second, true
		},
		want: map[string]string{
			"nf_conntrack_udp_timeout": "45", "nf_conntrack_udp_timeout_stream": "150", "nf_conntrack_tcp_be_liberal": "1",
		},
	}, {
		name: "zero timeouts and tcpBeLiberal false leave the kernel's values",
		cfg:  func(c *config.ConntrackConfig) { *c = config.ConntrackConfig{} },
		tree: func(h *hostTree) { h.set(sysctlPath("nf_conntrack_tcp_be_liberal"), "1") },
		want: map[string]string{
			"nf_conntrack_max": "65536", "nf_conntrack_tcp_timeout_established": "432000",
			"nf_conntrack_tcp_timeout_close_wait": "60", "nf_conntrack_tcp_be_liberal": "1",
		},
	}, {
		name: "a sub-second timeout is one second, not zero",
		cfg:  func(c *config.ConntrackConfig) { c.UDPTimeout = 300 * time.Millisecond },
		want: map[string]string{"nf_conntrack_udp_timeout": "1"},
	}, {
		name:    "hashsize is never written",
		cfg:     func(c *config.ConntrackConfig) { c.MaxPerCore = 1 << 20 },
		want:    map[string]string{"nf_conntrack_max": "2097152"},
		wantLog: []string{"hashsize is left to the host"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHostTree(t)
			if tt.tree != nil {
				tt.tree(h)
			}
			c := upstreamDefaults()
			if tt.cfg != nil {
				tt.cfg(&c)
			}
			var logs logLines
			if err := applyConntrack(h.host(), c, logs.logger()); err != nil {
				t.Fatalf("applyConntrack: %v", err)
			}
			for name, want := range tt.want {
				if got := h.sysctl(name); got != want {
					t.Errorf("%s = %s, want %s", name, got, want)
				}
			}
			if got := h.get(conntrackHashsizePath); got != "65536" {
				t.Errorf("hashsize = %s, want it untouched (65536)", got)
			}
			if len(tt.wantLog) > 0 && !logs.find(tt.wantLog...) {
				t.Errorf("no log line with %q in:\n%s", tt.wantLog, strings.Join(logs.lines, "\n"))
			}
		})
	}
}

func TestApplyConntrackFailures(t *testing.T) {
	tests := []struct {
		name    string
		tree    func(h *hostTree)
		wantErr string
	}{
		{"missing timeout sysctl", func(h *hostTree) { h.remove(sysctlPath("nf_conntrack_tcp_timeout_close_wait")) },
			"net.netfilter.nf_conntrack_tcp_timeout_close_wait=3600"},
		{"missing limit sysctl", func(h *hostTree) { h.remove(sysctlPath("nf_conntrack_max")) },
			"net.netfilter.nf_conntrack_max=131072"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHostTree(t)
			tt.tree(h)
			cfg := &config.Config{Conntrack: upstreamDefaults(), OOMScoreAdj: -999}
			var logs logLines
			err := applyHostSettings(cfg, h.host(), logs.logger())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("applyHostSettings error = %v, want one naming %s", err, tt.wantErr)
			}
		})
	}
}

func TestApplyHostSettingsOOMScoreAdj(t *testing.T) {
	t.Run("written to the own process", func(t *testing.T) {
		h := newHostTree(t)
		var logs logLines
		if err := applyHostSettings(&config.Config{OOMScoreAdj: -999}, h.host(), logs.logger()); err != nil {
			t.Fatal(err)
		}
		if got := h.get(oomScoreAdjPath); got != "-999" {
			t.Errorf("oom_score_adj = %s, want -999", got)
		}
	})
	t.Run("a failure is logged, not fatal", func(t *testing.T) {
		h := newHostTree(t)
		h.remove(oomScoreAdjPath)
		var logs logLines
		if err := applyHostSettings(&config.Config{OOMScoreAdj: -999}, h.host(), logs.logger()); err != nil {
			t.Fatalf("applyHostSettings: %v", err)
		}
		if !logs.find("Failed to apply OOMScore", "oom_score_adj") {
			t.Errorf("no log line for the failure in:\n%s", strings.Join(logs.lines, "\n"))
		}
	})
}
