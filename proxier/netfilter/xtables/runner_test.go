package xtables

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier/command"
)

// restorer is the netfilter.Restorer method set, checked here without
// importing the core (netfilter/restorer_impl_test.go checks it too).
type restorer interface {
	Restore(ctx context.Context, data []byte) error
	Save(ctx context.Context, table string) ([]byte, error)
}

var _ restorer = (*Runner)(nil)

func TestNewOptions(t *testing.T) {
	tests := []struct {
		opts    Options
		want    []string
		wantErr bool
	}{
		{opts: Options{}, want: []string{"iptables-restore", "--noflush", "-w", "5", "-W", "100000"}},
		{opts: Options{Family: v1.IPv6Protocol, WaitSeconds: 2, WaitIntervalUsec: 10}, want: []string{"ip6tables-restore", "--noflush", "-w", "2", "-W", "10"}},
		{opts: Options{Legacy: true}, want: []string{"iptables-legacy-restore", "--noflush", "-w", "5", "-W", "100000"}},
		{opts: Options{Backend: BackendLegacy, Family: v1.IPv6Protocol}, want: []string{"ip6tables-legacy-restore", "--noflush", "-w", "5", "-W", "100000"}},
		{opts: Options{Backend: BackendNFT}, want: []string{"iptables-nft-restore", "--noflush", "-w", "5", "-W", "100000"}},
		{opts: Options{Backend: "xtables"}, wantErr: true},
		{opts: Options{Backend: BackendNFT, Legacy: true}, wantErr: true},
		{opts: Options{Timeout: -time.Second}, wantErr: true},
		{opts: Options{Family: "IPv7"}, wantErr: true},
		{opts: Options{WaitSeconds: -1}, wantErr: true},
	}
	for _, tt := range tests {
		r, err := New(tt.opts)
		if (err != nil) != tt.wantErr {
			t.Errorf("New(%+v) error = %v", tt.opts, err)
			continue
		}
		if err == nil && !slices.Equal(r.restoreArgs(), tt.want) {
			t.Errorf("New(%+v) restore args = %q, want %q", tt.opts, r.restoreArgs(), tt.want)
		}
	}
}

func TestRestoreErrorContext(t *testing.T) {
	input := []byte("*nat\n:A - [0:0]\n-A A -j NOPE\nCOMMIT\n")
	tests := []struct {
		stderr  string
		line    int
		context []string
	}{
		{"iptables-restore: line 3 failed: No chain/target/match by that name.", 3, []string{"2: :A - [0:0]", "3: -A A -j NOPE", "4: COMMIT"}},
		{"iptables-restore v1.8.9 (nf_tables): Chain 'NOPE' does not exist\nError occurred at line: 3\n", 3, []string{"2: :A - [0:0]", "3: -A A -j NOPE", "4: COMMIT"}},
		{"iptables-restore v1.8.9 (nf_tables): \nline 1: CHAIN_DEL failed (Device or resource busy): chain A", 1, []string{"1: *nat", "2: :A - [0:0]"}},
		{"iptables-restore: COMMIT expected at line 5", 5, []string{"4: COMMIT", "5: "}},
		{"something else", 0, nil},
	}
	for _, tt := range tests {
		e := newRestoreError(input, tt.stderr, errors.New("exit status 1"))
		if e.Line != tt.line || !slices.Equal(e.Context, tt.context) {
			t.Errorf("stderr %q: line %d context %q, want %d %q", tt.stderr, e.Line, e.Context, tt.line, tt.context)
		}
		if !strings.Contains(e.Error(), "exit status 1") {
			t.Errorf("Error() = %q lacks the cause", e.Error())
		}
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in          string
		want        Version
		randomFully bool
		wantErr     bool
	}{
		{in: "iptables v1.8.9 (nf_tables)\n", want: Version{1, 8, 9, "nf_tables"}, randomFully: true},
		{in: "iptables v1.8.9 (legacy)", want: Version{1, 8, 9, "legacy"}, randomFully: true},
		{in: "iptables v1.6.2", want: Version{1, 6, 2, ""}, randomFully: true},
		{in: "iptables v1.6.1", want: Version{1, 6, 1, ""}, randomFully: false},
		{in: "iptables v1.4.21", want: Version{1, 4, 21, ""}, randomFully: false},
		{in: "garbage", wantErr: true},
	}
	for _, tt := range tests {
		v, err := ParseVersion(tt.in)
		if (err != nil) != tt.wantErr || v != tt.want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v", tt.in, v, err, tt.want)
		}
		if err == nil && v.AtLeast(1, 6, 2) != tt.randomFully {
			t.Errorf("%v.AtLeast(1,6,2) = %v", v, !tt.randomFully)
		}
	}
}

func TestRunnerUsesPrefixAndReportsFailure(t *testing.T) {
	// "false" as a prefix makes every command fail without touching iptables.
	r, err := New(Options{CommandPrefix: []string{"false"}})
	if err != nil {
		t.Fatal(err)
	}
	var re *RestoreError
	if err := r.Restore(context.Background(), []byte("*nat\nCOMMIT\n")); !errors.As(err, &re) {
		t.Errorf("Restore error = %v, want *RestoreError", err)
	}
	if _, err := r.Save(context.Background(), "nat"); err == nil {
		t.Error("Save succeeded through a failing prefix")
	}
	// "echo" prints the command line: the save arguments are what kube-proxy runs.
	r, _ = New(Options{CommandPrefix: []string{"echo"}, Family: v1.IPv6Protocol})
	out, err := r.Save(context.Background(), "filter")
	if err != nil || strings.TrimSpace(string(out)) != "ip6tables-save -t filter" {
		t.Errorf("Save through echo = %q, %v", out, err)
	}
}

// TestRunnerTimesOutHungCommands runs every command through a prefix that
// hangs, as a stuck iptables-restore would: each call fails with a
// *command.TimeoutError within its deadline instead of blocking the sync.
func TestRunnerTimesOutHungCommands(t *testing.T) {
	r, err := New(Options{CommandPrefix: []string{"sh", "-c", "sleep 60", "--"}, Timeout: 200 * time.Millisecond,
		TimeoutPerMB: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	calls := []struct {
		name string
		call func(context.Context) error
		want time.Duration
	}{
		{"restore 1.5 MiB", func(ctx context.Context) error {
			return r.Restore(ctx, make([]byte, 3<<19))
		}, 350 * time.Millisecond},
		{"save", func(ctx context.Context) error { _, err := r.Save(ctx, "nat"); return err }, 200 * time.Millisecond},
		{"list", func(ctx context.Context) error { _, err := r.ListChain(ctx, "nat", "KUBE-SERVICES"); return err }, 200 * time.Millisecond},
		{"version", func(ctx context.Context) error { _, err := r.Version(ctx); return err }, 200 * time.Millisecond},
	}
	for _, c := range calls {
		start := time.Now()
		err := c.call(context.Background())
		elapsed := time.Since(start)
		var te *command.TimeoutError
		if !errors.As(err, &te) || te.After != c.want {
			t.Errorf("%s: err = %v, want a timeout after %v", c.name, err, c.want)
		}
		if elapsed < c.want || elapsed > c.want+command.WaitDelay {
			t.Errorf("%s: returned after %v, deadline %v", c.name, elapsed, c.want)
		}
	}
}
