package config

import (
	"strings"
	"testing"
	"time"
)

func TestIPTablesBackendFlag(t *testing.T) {
	_, fs := newFlagSet(t)
	if got := fs.Lookup("iptables-backend").DefValue; got != IPTablesBackendAuto {
		t.Errorf("--iptables-backend default = %q, want auto", got)
	}
	for _, v := range []string{"auto", "nft", "legacy"} {
		if c := mustResolve(t, "--iptables-backend="+v); c.IPTablesBackend != v {
			t.Errorf("--iptables-backend=%s resolved to %q", v, c.IPTablesBackend)
		}
	}
	if c := mustResolve(t); c.IPTablesBackend != IPTablesBackendAuto {
		t.Errorf("default backend = %q, want auto", c.IPTablesBackend)
	}
	for _, bad := range []string{"--iptables-backend=xtables", "--iptables-backend=NFT", "--iptables-backend="} {
		_, fs := newFlagSet(t)
		err := fs.Parse([]string{bad})
		if err == nil || !strings.Contains(err.Error(), "auto, nft, legacy") {
			t.Errorf("parse %s: err = %v, want the allowed values", bad, err)
		}
	}
	// A kproxy-only flag is honoured with --config too.
	cfg := writeFile(t, header)
	if c := mustResolve(t, "--config", cfg, "--iptables-backend=legacy"); c.IPTablesBackend != "legacy" || len(c.IgnoredFlags) != 0 {
		t.Errorf("with --config: backend %q, ignored %q", c.IPTablesBackend, c.IgnoredFlags)
	}
}

func TestCommandTimeoutFlag(t *testing.T) {
	_, fs := newFlagSet(t)
	if got := fs.Lookup("command-timeout").DefValue; got != "1m0s" {
		t.Errorf("--command-timeout default = %q, want 1m0s", got)
	}
	if c := mustResolve(t); c.CommandTimeout != time.Minute {
		t.Errorf("default command timeout = %v", c.CommandTimeout)
	}
	if c := mustResolve(t, "--command-timeout=3s"); c.CommandTimeout != 3*time.Second {
		t.Errorf("--command-timeout=3s resolved to %v", c.CommandTimeout)
	}
	for _, bad := range []string{"0", "-1s"} {
		f, fs := parseArgs(t, "--command-timeout="+bad)
		if _, err := resolve(f, fs, fixedHostname("h")); err == nil {
			t.Errorf("--command-timeout=%s accepted", bad)
		}
	}
}
