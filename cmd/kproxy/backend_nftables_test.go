package main

import (
	"context"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/config"
)

// fakeNFTOpens stands in for nft in PATH for a start in nftables mode. It
// answers --version, and appends the input of every --check to
// $FAKE_NFT_CHECKS: knftables.New checks that it can add the table it is
// opened for ("add table ip6 kube-proxy ..."), once per interface opened.
// With $FAKE_NFT_NO_IP6 set it cannot handle ip6 tables. Every other use
// of nft fails the test.
const fakeNFTOpens = `#!/bin/sh
case "$*" in
--version)
	echo "nftables v1.0.6 (Lester Gooch #5)" ;;
"--check -f -")
	in=$(cat)
	echo "$in" >>"$FAKE_NFT_CHECKS"
	case "$in" in
	*"table ip6 "*)
		if [ -n "$FAKE_NFT_NO_IP6" ]; then
			echo "Error: Could not process rule: Operation not supported" >&2; exit 1
		fi ;;
	esac ;;
*)
	echo "fake nft: unexpected arguments $*" >&2; exit 2 ;;
esac
`

// resolvedConfig is kproxy's configuration for args, as runOn resolves it.
func resolvedConfig(t *testing.T, args ...string) *config.Config {
	t.Helper()
	fs := pflag.NewFlagSet("kproxy", pflag.ContinueOnError)
	var flags config.Flags
	flags.AddTo(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Resolve(&flags, fs)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestNFTablesOpenedOncePerFamily: starting in nftables mode opens nft
// (knftables.New, which runs nft itself) once for each family, the
// interface its backend then uses, not once to see whether IPv6 works and
// again for the backend. Where nft cannot handle ip6 tables, IPv6 is tried
// once and left out.
func TestNFTablesOpenedOncePerFamily(t *testing.T) {
	for _, tc := range []struct {
		name     string
		noIP6    bool
		families []v1.IPFamily
		// ip6Checks: knftables.New checks with a comment, then once more
		// without one before it gives up.
		ip6Checks int
	}{
		{name: "dual stack", families: []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol}, ip6Checks: 1},
		{name: "no ip6 tables", noIP6: true, families: []v1.IPFamily{v1.IPv4Protocol}, ip6Checks: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checks := withNFTOpensFake(t, tc.noIP6)
			cfg := resolvedConfig(t, "--proxy-mode", "nftables", "--manifests", t.TempDir(), "--hostname-override", "node-1")
			h := host{interfaceAddrs: func(fam v1.IPFamily) []netip.Addr {
				if fam == v1.IPv6Protocol {
					return []netip.Addr{netip.MustParseAddr("fd00::1")}
				}
				return []netip.Addr{netip.MustParseAddr("192.168.1.10")}
			}}
			var logs logLines
			p, err := newProxy(context.Background(), cfg, h, logs.logger(), io.Discard)
			if err != nil {
				t.Fatalf("newProxy: %v\n%s", err, strings.Join(logs.lines, "\n"))
			}
			var fams []v1.IPFamily
			for _, fp := range p.families {
				fams = append(fams, fp.family)
			}
			if !slices.Equal(fams, tc.families) {
				t.Errorf("families %v, want %v", fams, tc.families)
			}
			data, err := os.ReadFile(checks)
			if err != nil {
				t.Fatal(err)
			}
			opens := map[string]int{}
			for _, line := range strings.Split(string(data), "\n") {
				for _, fam := range []string{"ip", "ip6"} {
					if strings.HasPrefix(line, "add table "+fam+" kube-proxy") {
						opens[fam]++
					}
				}
			}
			if opens["ip"] != 1 || opens["ip6"] != tc.ip6Checks {
				t.Errorf("nft checked table ip kube-proxy %d times and ip6 kube-proxy %d times, want 1 and %d; checks:\n%s",
					opens["ip"], opens["ip6"], tc.ip6Checks, data)
			}
		})
	}
}

// withNFTOpensFake puts fakeNFTOpens first in PATH and returns the file
// its checks are appended to.
func withNFTOpensFake(t *testing.T, noIP6 bool) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "nft"), []byte(fakeNFTOpens), 0o755); err != nil {
		t.Fatal(err)
	}
	checks := filepath.Join(dir, "checks")
	t.Setenv("PATH", dir+":/usr/bin:/bin")
	t.Setenv("FAKE_NFT_CHECKS", checks)
	t.Setenv("FAKE_NFT_NO_IP6", map[bool]string{true: "1"}[noIP6])
	return checks
}
