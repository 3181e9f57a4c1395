package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/kube-proxy/config/v1alpha1"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/ipvs/vs"
	"github.com/kproxy/kproxy/proxier"
)

const (
	iptablesMode = config.ModeIPTables
	ipvsMode     = config.ModeIPVS
	nftMode      = config.ModeNFTables
)

// TestLeftoverModes is upstream's platformCleanup decision for each mode
// kproxy can be started in (nftables included, before its backend exists).
func TestLeftoverModes(t *testing.T) {
	all := []v1alpha1.ProxyMode{iptablesMode, ipvsMode, nftMode}
	cases := []struct {
		mode    v1alpha1.ProxyMode
		cleanup bool
		want    []v1alpha1.ProxyMode
	}{
		{iptablesMode, false, []v1alpha1.ProxyMode{nftMode}},
		{ipvsMode, false, []v1alpha1.ProxyMode{nftMode}},
		{nftMode, false, []v1alpha1.ProxyMode{iptablesMode, ipvsMode}},
		{"kernelspace", false, nil},
		{"", false, nil},
		{iptablesMode, true, all},
		{ipvsMode, true, all},
		{nftMode, true, all},
		{"kernelspace", true, all},
	}
	for _, tc := range cases {
		if got := leftoverModes(tc.mode, tc.cleanup); !slices.Equal(got, tc.want) {
			t.Errorf("leftoverModes(%q, cleanup=%v) = %v, want %v", tc.mode, tc.cleanup, got, tc.want)
		}
	}
}

// recordingCleaners record which modes' cleanups ran; failing ones fail.
type recordingCleaners struct {
	ran     []v1alpha1.ProxyMode
	failing map[v1alpha1.ProxyMode]bool
}

func (r *recordingCleaners) cleaners() modeCleaners {
	c := modeCleaners{}
	for _, m := range []v1alpha1.ProxyMode{iptablesMode, ipvsMode, nftMode} {
		c[m] = func(context.Context) error {
			r.ran = append(r.ran, m)
			if r.failing[m] {
				return errors.New("boom in " + string(m))
			}
			return nil
		}
	}
	return c
}

// TestStartupCleanupPerMode: before the first sync each mode removes the
// other modes' leftovers, and only those, even when one of them fails.
func TestStartupCleanupPerMode(t *testing.T) {
	cases := []struct {
		mode    v1alpha1.ProxyMode
		failing v1alpha1.ProxyMode
		want    []v1alpha1.ProxyMode
		logged  string
	}{
		{mode: iptablesMode, want: []v1alpha1.ProxyMode{nftMode}},
		{mode: ipvsMode, want: []v1alpha1.ProxyMode{nftMode}},
		{mode: nftMode, want: []v1alpha1.ProxyMode{iptablesMode, ipvsMode}},
		{mode: nftMode, failing: iptablesMode, want: []v1alpha1.ProxyMode{iptablesMode, ipvsMode},
			logged: "boom in iptables"},
		{mode: iptablesMode, failing: nftMode, want: []v1alpha1.ProxyMode{nftMode}, logged: "boom in nftables"},
	}
	for _, tc := range cases {
		t.Run(string(tc.mode)+"/failing="+string(tc.failing), func(t *testing.T) {
			rec := &recordingCleaners{failing: map[v1alpha1.ProxyMode]bool{tc.failing: true}}
			var logs logLines
			removeOtherModesLeftovers(context.Background(), tc.mode, rec.cleaners(), logs.logger())
			if !slices.Equal(rec.ran, tc.want) {
				t.Errorf("cleanups run: %v, want %v", rec.ran, tc.want)
			}
			if tc.logged != "" && !logs.find("Could not remove other proxy modes' leftovers; going on", tc.logged) {
				t.Errorf("the failure was not logged with its reason %q:\n%s", tc.logged, strings.Join(logs.lines, "\n"))
			}
			if tc.logged == "" && logs.find("Could not remove") {
				t.Errorf("an error was logged though nothing failed:\n%s", strings.Join(logs.lines, "\n"))
			}
		})
	}
}

// TestCleanupFlagRemovesEveryMode: --cleanup runs all three cleanups
// whatever the mode, goes on after a failure and returns it, naming the mode.
func TestCleanupFlagRemovesEveryMode(t *testing.T) {
	for _, mode := range []v1alpha1.ProxyMode{iptablesMode, ipvsMode, nftMode} {
		rec := &recordingCleaners{failing: map[v1alpha1.ProxyMode]bool{ipvsMode: true}}
		err := removeLeftovers(context.Background(), leftoverModes(mode, true), rec.cleaners())
		if want := []v1alpha1.ProxyMode{iptablesMode, ipvsMode, nftMode}; !slices.Equal(rec.ran, want) {
			t.Errorf("mode %s: cleanups run %v, want %v", mode, rec.ran, want)
		}
		if err == nil || !strings.Contains(err.Error(), "remove ipvs mode's rules: boom in ipvs") {
			t.Errorf("mode %s: error %v, want the IPVS cleanup's failure", mode, err)
		}
	}
}

func TestRemoveLeftoversWithoutACleaner(t *testing.T) {
	err := removeLeftovers(context.Background(), []v1alpha1.ProxyMode{"kernelspace"}, modeCleaners{})
	if err == nil || !strings.Contains(err.Error(), `no cleanup for proxy mode "kernelspace"`) {
		t.Errorf("error %v, want one naming the mode without a cleanup", err)
	}
}

// TestNFTablesCleanupWithoutNFT: a node without nft has no nftables-mode
// tables; kproxy says so in one line and carries on (no error).
func TestNFTablesCleanupWithoutNFT(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	var logs logLines
	cfg := &config.Config{CommandTimeout: time.Second}
	if err := cleanupNFTables(context.Background(), cfg, logs.logger()); err != nil {
		t.Fatalf("cleanup without nft: %v", err)
	}
	if len(logs.lines) != 1 || !logs.find("nft not found: no nftables-mode tables to remove") {
		t.Errorf("want exactly one line saying nft is missing, got:\n%s", strings.Join(logs.lines, "\n"))
	}
}

// TestIPTablesCleanupWithoutIPTables: a node without iptables (nftables
// mode needs none) has no iptables-mode rules: one line, no error.
func TestIPTablesCleanupWithoutIPTables(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for _, backend := range []string{config.IPTablesBackendNFT, config.IPTablesBackendLegacy} {
		var logs logLines
		cfg := &config.Config{CommandTimeout: time.Second, IPTablesBackend: backend}
		clean := newModeCleaners(context.Background(), cfg, logs.logger())[iptablesMode]
		if err := clean(context.Background()); err != nil {
			t.Fatalf("backend %s: cleanup without iptables: %v", backend, err)
		}
		if !logs.find("iptables not found: no iptables-mode rules to remove", "iptables-"+backend+"-save") {
			t.Errorf("backend %s: want a line naming the missing binary, got:\n%s", backend, strings.Join(logs.lines, "\n"))
		}
	}
}

// TestIPVSCleanupWithoutIPVS: a kernel without IPVS (its generic netlink
// family not registered) has no virtual servers: one V(2) line, no error,
// and no handle opened (moby/ipvs would run modprobe and log an error of
// its own). A failure to find out or to open IPVS stays an error.
func TestIPVSCleanupWithoutIPVS(t *testing.T) {
	errProbe := errors.New("netlink: permission denied")
	errOpen := errors.New("socket: too many open files")
	cases := []struct {
		name     string
		has      bool
		probeErr error
		openErr  error
		wantOpen bool
		wantErr  error
		wantLog  string
	}{
		{name: "no IPVS in the kernel", wantLog: `"level"=2 "msg"="No IPVS in this kernel: no virtual servers to remove"`},
		{name: "IPVS", has: true, wantOpen: true},
		{name: "probe fails", probeErr: errProbe, wantErr: errProbe},
		{name: "open fails", has: true, openErr: errOpen, wantOpen: true, wantErr: errOpen},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs logLines
			opened := false
			_, err := openIPVSForCleanup(func() (bool, error) { return tc.has, tc.probeErr },
				func(nsPath string) (*vs.KernelHandle, error) {
					if nsPath != "" {
						t.Errorf("opened IPVS in %q, want this process's namespace", nsPath)
					}
					opened = true
					return nil, tc.openErr
				}, logs.logger())
			if opened != tc.wantOpen {
				t.Errorf("handle opened: %v, want %v", opened, tc.wantOpen)
			}
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Errorf("error = %v, want %v", err, tc.wantErr)
			}
			if tc.wantLog != "" && !logs.find(tc.wantLog) {
				t.Errorf("want a line %s, got:\n%s", tc.wantLog, strings.Join(logs.lines, "\n"))
			}
			if tc.wantLog == "" && len(logs.lines) != 0 {
				t.Errorf("want no log line, got:\n%s", strings.Join(logs.lines, "\n"))
			}
		})
	}
}

// TestLeftoversRemovedAfterEveryFamilySynced: the other modes' rules stay
// until every family's first successful sync (so they carry traffic until
// the new mode's are in place), then go exactly once.
func TestLeftoversRemovedAfterEveryFamilySynced(t *testing.T) {
	var runs atomic.Int32
	r := newLeftoverRemover([]v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol}, func() { runs.Add(1) })
	synced := func(fam v1.IPFamily, err error) {
		r.Synced(context.Background(), &proxier.Snapshot{Family: fam}, proxier.SyncResult{}, 0, err)
	}
	synced(v1.IPv4Protocol, nil)
	synced(v1.IPv6Protocol, errors.New("restore failed"))
	synced(v1.IPv4Protocol, nil)
	select {
	case <-r.done:
		t.Fatal("cleanup ran before the IPv6 family's first successful sync")
	case <-time.After(50 * time.Millisecond):
	}
	synced(v1.IPv6Protocol, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.wait(ctx)
	synced(v1.IPv6Protocol, nil)
	synced(v1.IPv4Protocol, nil)
	if n := runs.Load(); n != 1 {
		t.Errorf("cleanup ran %d times, want once", n)
	}
}
