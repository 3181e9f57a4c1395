package nft_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/kproxy/kproxy/proxier/command"
	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/nft"
)

// fakeNFT is a shell script standing in for nft in PATH. What it does is
// chosen per test through FAKE_NFT_* variables; every transaction it is
// given (nft -f -) is appended to FAKE_NFT_LOG.
const fakeNFT = `#!/bin/sh
case "$*" in
--version)
	[ "$FAKE_NFT_VERSION" = hang ] && exec sleep 60
	echo "${FAKE_NFT_VERSION:-nftables v1.0.6 (Lester Gooch #5)}"
	echo "  cli:		editline" ;;
"--check -f -")
	cat >/dev/null ;;
"-f -")
	cat >>"$FAKE_NFT_LOG"
	case "$FAKE_NFT_RUN" in
	hang) exec sleep 60 ;;
	missing) echo "Error: Could not process rule: No such file or directory" >&2; exit 1 ;;
	denied) echo "Error: Could not process rule: Operation not permitted" >&2; exit 1 ;;
	esac ;;
*)
	echo "fake nft: unexpected arguments $*" >&2; exit 2 ;;
esac
`

// withFakeNFT puts fakeNFT first in PATH (alone: nothing else is needed)
// and returns its transaction log.
func withFakeNFT(t *testing.T, version, run string) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "nft"), []byte(fakeNFT), 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "transactions")
	t.Setenv("PATH", dir+":/usr/bin:/bin")
	t.Setenv("FAKE_NFT_VERSION", version)
	t.Setenv("FAKE_NFT_RUN", run)
	t.Setenv("FAKE_NFT_LOG", log)
	return log
}

func TestOpenWithoutNFT(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := nft.Open(context.Background(), nft.Options{Timeout: time.Second})
	if !errors.Is(err, nft.ErrNotInstalled) {
		t.Fatalf("Open without nft in PATH = %v, want ErrNotInstalled", err)
	}
	if _, err := nft.Version(context.Background(), time.Second); !errors.Is(err, nft.ErrNotInstalled) {
		t.Fatalf("Version without nft in PATH = %v, want ErrNotInstalled", err)
	}
}

// TestOpenKillsAHangingVersion: a hung nft --version is killed at the deadline.
func TestOpenKillsAHangingVersion(t *testing.T) {
	withFakeNFT(t, "hang", "")
	start := time.Now()
	_, err := nft.Open(context.Background(), nft.Options{Timeout: 300 * time.Millisecond})
	var te *command.TimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("Open with a hanging nft = %v, want a *command.TimeoutError", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Open returned after %v; the deadline was 300ms", d)
	}
}

// TestOpenBoundsEveryRun: a transaction that hangs is killed at the
// deadline and reported as a timeout naming nft.
func TestOpenBoundsEveryRun(t *testing.T) {
	log := withFakeNFT(t, "", "hang")
	n, err := nft.Open(context.Background(), nft.Options{Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = netfilter.CleanupNFTablesMode(context.Background(), n)
	var te *command.TimeoutError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "nft -f -") {
		t.Fatalf("cleanup with a hanging nft = %v, want a *command.TimeoutError naming nft -f -", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cleanup returned after %v; two deadlines of 300ms", d)
	}
	if got := readFile(t, log); !strings.Contains(got, "delete table ip kube-proxy") || !strings.Contains(got, "delete table ip6 kube-proxy") {
		t.Errorf("transactions given to nft:\n%s\nwant both tables deleted, one after the other", got)
	}
}

// TestCleanupThroughNFT runs the cleanup through Open's Interface and a
// fake nft binary: the transactions are exactly the two table deletions,
// nft's "No such file or directory" is no error, and other failures are.
func TestCleanupThroughNFT(t *testing.T) {
	for _, tc := range []struct {
		run     string
		removed int
		wantErr string
	}{
		{run: "", removed: 2},
		{run: "missing", removed: 0},
		{run: "denied", wantErr: "Operation not permitted"},
	} {
		t.Run("nft "+tc.run, func(t *testing.T) {
			log := withFakeNFT(t, "", tc.run)
			n, err := nft.Open(context.Background(), nft.Options{Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			removed, err := netfilter.CleanupNFTablesMode(context.Background(), n)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("cleanup = %v, want error %q", err, tc.wantErr)
			}
			if removed != tc.removed {
				t.Errorf("removed %d, want %d", removed, tc.removed)
			}
			if got, want := readFile(t, log), "delete table ip kube-proxy\ndelete table ip6 kube-proxy\n"; got != want {
				t.Errorf("transactions given to nft:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestOpenedInterfaceIsBound: Open with a family and table gives an
// Interface bound to them (as the nftables backend opens its table).
func TestOpenedInterfaceIsBound(t *testing.T) {
	log := withFakeNFT(t, "", "")
	n, err := nft.Open(context.Background(), nft.Options{Family: knftables.IPv6Family, Table: "kube-proxy", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tx := n.NewTransaction()
	tx.Add(&knftables.Chain{Name: "nat-prerouting"})
	if err := n.Run(context.Background(), tx); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, log); got != "add chain ip6 kube-proxy nat-prerouting\n" {
		t.Errorf("transaction %q, want the chain in ip6 kube-proxy", got)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCheckHost reads the (fake) nft's version and this machine's kernel
// release; the kernel check is skipped through getenv, so the result does
// not depend on the machine's kernel (CheckPrerequisites' tests cover it).
func TestCheckHost(t *testing.T) {
	skipKernel := func(k string) string { return map[string]string{nft.SkipKernelCheckEnv: "1"}[k] }
	withFakeNFT(t, "", "")
	if err := nft.CheckHost(context.Background(), 5*time.Second, skipKernel); err != nil {
		t.Errorf("nft 1.0.6: %v", err)
	}
	h, err := nft.ReadHost(context.Background(), 5*time.Second, skipKernel)
	if err != nil || h.NFTVersion != "nftables v1.0.6 (Lester Gooch #5)" || !h.SkipKernelCheck || h.KernelRelease == "" {
		t.Errorf("ReadHost = %+v, %v; want the first line of nft --version, the skip set, the kernel release", h, err)
	}
	if h, _ := nft.ReadHost(context.Background(), 5*time.Second, func(string) string { return "" }); h.SkipKernelCheck {
		t.Error("ReadHost without the variable set skips the kernel check")
	}
	withFakeNFT(t, "nftables v0.9.8 (E.D.S.)", "")
	if err := nft.CheckHost(context.Background(), 5*time.Second, skipKernel); err == nil || !strings.Contains(err.Error(), "requires nft 1.0.1") {
		t.Errorf("nft 0.9.8: %v, want the nft version error", err)
	}
	t.Setenv("PATH", t.TempDir())
	if err := nft.CheckHost(context.Background(), 5*time.Second, skipKernel); !errors.Is(err, nft.ErrNotInstalled) {
		t.Errorf("no nft: %v, want ErrNotInstalled", err)
	}
}
